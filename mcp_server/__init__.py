"""inferwatch MCP server and dashboard test harness (see DESIGN.md; built in a later issue)."""
