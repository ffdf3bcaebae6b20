"""The demo CRM: a simulated book of B2B accounts (``simulate``), a second, product-led world
with usage events only (``usage_world``), and writers that lay a canonical export out in a CRM's
own file shapes (``shapes``: Salesforce, HubSpot). Never read by ingestion."""
