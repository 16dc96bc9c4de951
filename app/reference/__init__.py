"""Reference data the service reasons with (contract §11): locations and groupings, GWP100
values, units and conversion properties, loaded from `seed_data/reference/` with citations."""
