from fastapi.testclient import TestClient


def test_seeded_factors_for_china(client: TestClient, seeded: None) -> None:
    response = client.get("/v1/factors", params={"region": "CN"})
    assert response.status_code == 200
    assert {f["reference_year"] for f in response.json()["items"]} == {2021, 2022, 2023}
