"""The Streamlit front end's helpers and pages; only app.py uses it, and rag/ never imports it."""
