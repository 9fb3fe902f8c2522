-- ospab panel: why a synced record is not linked to its guest yet (issue 10 item 1).
-- The billing site may sync a Proxmox server without node and vmid (seed 000); the agent
-- then links it to the one guest of that name on its clusters (docs/agent.md, "Adoption").
-- When it cannot (no such guest, several, or one already linked to another server) it
-- says why here, for admins (the sync API's record) and, in the customer's words, in the
-- 409 of the power routes; NULL once the record has its node and vmid.
ALTER TABLE vps ADD COLUMN binding_note TEXT NULL;
