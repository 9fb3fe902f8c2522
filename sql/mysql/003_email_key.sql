-- ospab panel: the key logins look accounts up by (security fix M4).
-- users.email keeps what the billing site sent and stays unique under
-- utf8mb4_unicode_ci; email_key is the address trimmed, Unicode NFC and lower case
-- (lib/ospab_util.c ospab_email_key), compared byte for byte (utf8mb4_bin), so an address
-- that only looks like another one ("démo@", full-width "ｄemo@", a trailing space) can
-- neither log into that account nor get a rate-limit counter of its own for it. The
-- application writes it with every change of email; the UPDATE below is a first fill,
-- and `ospab-admin migrate` recomputes every key in C afterwards.
ALTER TABLE users ADD COLUMN email_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL AFTER email;
UPDATE users SET email_key = LOWER(TRIM(email));
CREATE UNIQUE INDEX ux_users_email_key ON users (email_key);
