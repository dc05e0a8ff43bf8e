"""One Streamlit script per view; `app.py` routes to them with `st.navigation`."""
