-- ospab panel: suspension that bites (issue 13 item 4, docs/operations.md "Suspension").
-- While a server is suspended (vps.status = 'suspended', set by the billing site's sync or
-- an admin) its guest is kept stopped and the customer's operations answer 403; this
-- column keeps the state the server had before, which unsuspending restores ('running'
-- starts the guest again). NULL when the server is not suspended, or was suspended before
-- this column existed (restored as 'running').
ALTER TABLE vps ADD COLUMN suspended_status VARCHAR(20) NULL;
