"""The web explorer: server-rendered, bilingual HTML pages over the same services as the API.

Each page module holds its routes and the data it renders (`search.py`, `factor_pages.py`, ...);
`router.py` gathers them, `templating.py` renders, `i18n.py` picks the language and its labels.
No page calls the JSON API over HTTP: pages call the service functions the API calls.
"""
