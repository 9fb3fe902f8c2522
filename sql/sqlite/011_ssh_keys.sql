-- ospab panel: customers' SSH public keys (issue 14 item 3, docs/ssh-keys.md).
-- A customer keeps OpenSSH public keys in their account (/api/account/ssh-keys) and names
-- the ones a new server gets when it is made. public_key is the key's line as the panel
-- normalised it after parsing it (lib/ospab_sshkeys.c): "type base64" and the comment, if
-- any, separated by single spaces, no line end: it is what a server is given. fingerprint is
-- "SHA256:" and the unpadded base64 of the SHA-256 of the key data, as `ssh-keygen -lf`
-- prints it. An account holds a key once. The keys go with their account (the sync API's
-- user delete removes them itself: SQLite's connections here do not enforce the cascade).
CREATE TABLE ssh_keys (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id     INTEGER NOT NULL,
  name        TEXT    NOT NULL,
  public_key  TEXT    NOT NULL,
  fingerprint TEXT    NOT NULL,
  created_at  TEXT    NOT NULL,
  CONSTRAINT fk_ssh_keys_user FOREIGN KEY (user_id) REFERENCES users (id)
    ON DELETE CASCADE
);
CREATE UNIQUE INDEX ux_ssh_keys_user_fingerprint ON ssh_keys (user_id, fingerprint);
