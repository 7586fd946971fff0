"""SQL over the read-model tables, one module per read model.

Every function takes the tenant and puts it first in the ``WHERE`` clause:
the tables' keys start with ``tenant_id``, so a read can only ever reach the
caller's own rows. Nothing here knows about GraphQL.
"""
