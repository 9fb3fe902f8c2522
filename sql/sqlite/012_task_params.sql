-- ospab panel: what the later steps of a chained operation need (issue 14: a KVM server is
-- cloned from its template, then configured — cores, memory, cloud-init —, its disk grown,
-- then started; each step a Proxmox task the follower starts when the one before ended).
-- JSON, written with the first step and cleared when the operation ends. The root
-- password is kept only as its SHA-512 crypt hash (what Proxmox itself stores for
-- cloud-init's cipassword), never in clear.
ALTER TABLE tasks ADD COLUMN params TEXT NULL;
