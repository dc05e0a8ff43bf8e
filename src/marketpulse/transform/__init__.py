"""transform: load new bronze objects into the warehouse, run dbt (silver, gold), publish gold."""
