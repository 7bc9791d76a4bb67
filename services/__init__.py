"""The four kriselogg services and the composition root (`services.cli`)."""
