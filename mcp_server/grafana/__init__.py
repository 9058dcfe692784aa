"""Grafana: its HTTP API (api.py) and the browser that looks at its dashboards (browser.py)."""
