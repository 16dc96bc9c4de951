"""Reference data the service reasons with (contract §11): locations now; GWP and units later."""
