"""The incident log: one event-sourced, hash-chained stream per incident."""
