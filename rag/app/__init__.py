"""The Streamlit front end: pages and their helpers. It calls rag.api; no other rag module imports it."""
