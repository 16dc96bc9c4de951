"""The web explorer: server-rendered, bilingual HTML pages over the same services as the API.

Each page module holds its routes and the data it renders (`search.py`, `factor_pages.py`, ...);
`router.py` gathers them, `templating.py` renders, `i18n.py` picks the language and its labels.
No page calls the JSON API over HTTP: pages call the service functions the API calls, and a
`.json` twin that is an API answer calls the API's route function in-process, so its body and
headers are the API's (`ETag`, `Cache-Control`, `Content-Type`).
"""
