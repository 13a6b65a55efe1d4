"""Tenant-scoped repositories. Every method takes the tenant id and filters on it; the only
tenant-blind lookups are the routing ones that *find* the tenant (named ``resolve_...``)."""
