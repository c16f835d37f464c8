"""The Streamlit app from a checkout: `streamlit run app.py` (installed: `rag app`). It lives in rag/app/."""

from rag.app.main import main

main()
