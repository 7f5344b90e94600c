-- Per-organization data keys (issue 22): each organization's messages, metadata, attachments and
-- their names are sealed under data keys of its own, wrapped by the master key, versioned and
-- rotated with the hub's. Erasing an organization destroys its keys: the wrapped key is
-- overwritten and the row kept (ciphertexts name their key's version), destroyed_at set.
-- organization_id NULL: the hub-wide key of rows sealed before this migration.
ALTER TABLE message_encryption_keys ADD COLUMN organization_id UUID REFERENCES organizations (id);
ALTER TABLE message_encryption_keys ADD COLUMN destroyed_at TIMESTAMPTZ;
DROP INDEX one_active_encryption_key;
CREATE UNIQUE INDEX one_active_hub_key ON message_encryption_keys (status)
    WHERE status = 'active' AND organization_id IS NULL;
CREATE UNIQUE INDEX one_active_key_per_organization ON message_encryption_keys (organization_id)
    WHERE status = 'active' AND organization_id IS NOT NULL;
-- An erased organization: its keys destroyed, its name and its users' names pseudonymised,
-- its tokens refused from then on.
ALTER TABLE organizations ADD COLUMN erased_at TIMESTAMPTZ;
