'use strict';
/*
 * bench/run's peer: GET /api/server served the way a careful Node developer would serve it,
 * on the same database and rows as mod_ospab, answering the same JSON (bench.py compares
 * the two answers before it measures anything).
 *
 *   - Node's cluster module, 2 workers (the machine has 2 cores; Apache has 2 children);
 *   - Express 5, ETag and X-Powered-By off (the answer is Cache-Control: no-store);
 *   - jsonwebtoken: every request's token verified (signature, exp, nbf, HS256 only) with a
 *     secret key object made once at start-up, then the claims mod_ospab insists on;
 *   - one SQL statement per request: the user check (the user exists and is enabled, the
 *     login session the token belongs to is not revoked) joined to the list query, so a
 *     disabled user or an ended session is seen at once, as mod_ospab sees it (a second one
 *     only when that gives no row: a user without servers, or a token to refuse);
 *   - better-sqlite3 (synchronous, statements prepared once) or a mysql2 pool
 *     (server-side prepared statements through pool.execute).
 *
 * Environment (bench.py sets it):
 *   OSPAB_PEER_PORT       port on 127.0.0.1
 *   OSPAB_PEER_JWT_KEY    the HS256 secret (the harness's OspabJWTKey)
 *   OSPAB_PEER_DB         sqlite | mysql
 *   OSPAB_PEER_SQLITE     path of the SQLite file
 *   OSPAB_PEER_MYSQL_SOCKET, OSPAB_PEER_MYSQL_USER, OSPAB_PEER_MYSQL_PASSWORD,
 *   OSPAB_PEER_MYSQL_DATABASE
 */
const cluster = require('node:cluster');
const crypto = require('node:crypto');

const WORKERS = 2;
const LEEWAY = 30;          // seconds of clock skew, mod_ospab's default OspabJWTLeeway
const PAGE_DEFAULT = 50;    // an admin's first page, as lib/ospab_customer.h

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`peer: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

/*
 * The customer's list with the user check in the same statement (the same text for SQLite
 * and MariaDB): rows only if the user exists and is enabled; live = 0 if the token's login
 * session was revoked (logout, refresh-token reuse). A token without "sid" (ospab-admin
 * token) belongs to no login session and binds '' twice. These are the rows of mod_ospab's
 * two statements, ospab_principal_sid and ospab_server_page_user_201 (lib/ospab_sql.c), in
 * one round trip. An inner join, not users LEFT JOIN vps: MariaDB sorts the outer join's
 * rows in a temporary table (EXPLAIN: "Using temporary; Using filesort"), about a quarter
 * more time per statement; the inner join reads them in ix_vps_user's order.
 */
const SERVER_COLS = `
       v.id, v.user_id, v.tariff_id, v.os_id, v.name, v.status, v.vmid, v.ip_address,
       v.created_at, v.updated_at, v.os, v.cpu, v.ram, v.disk,
       o.id AS tmpl_id, o.name AS tmpl_name, o.type AS tmpl_type,
       t.id AS t_id, t.name AS t_name, t.price AS t_price`;
const JOINS = `
  LEFT JOIN os_templates o ON o.id = v.os_id
  LEFT JOIN tariffs t ON t.id = v.tariff_id`;
const LIVE = `(? = '' OR EXISTS (SELECT 1 FROM refresh_tokens r
                                  WHERE r.family_id = ? AND r.user_id = u.id
                                    AND r.revoked_at IS NULL)) AS live`;
const LIST_SQL = `
SELECT u.role, ${LIVE}, ${SERVER_COLS}
  FROM users u
  JOIN vps v ON v.user_id = u.id
  ${JOINS}
 WHERE u.id = ? AND u.enabled = 1
 ORDER BY v.id`;
/* no row above: a user without servers of their own, or one to refuse; this tells which */
const PRINCIPAL_SQL = `
SELECT u.role, ${LIVE}
  FROM users u
 WHERE u.id = ? AND u.enabled = 1`;
/* an admin sees every server, a page at a time (never reached by the benchmark) */
const ALL_SQL = `
SELECT ${SERVER_COLS}
  FROM vps v ${JOINS}
 ORDER BY v.id LIMIT ${PAGE_DEFAULT + 1}`;
/* a record without a tariff is shown as the enabled tariff of its sizes, if any */
const TARIFFS_SQL =
  'SELECT id, name, price, cores, memory, disk FROM tariffs WHERE enabled = 1 ORDER BY id';

function sqliteDb() {
  const Database = require('better-sqlite3');
  const db = new Database(need('OSPAB_PEER_SQLITE'), { fileMustExist: true });
  const list = db.prepare(LIST_SQL);
  const principal = db.prepare(PRINCIPAL_SQL);
  const all = db.prepare(ALL_SQL);
  const tariffs = db.prepare(TARIFFS_SQL);
  return {
    list: async (userId, sid) => list.all(sid, sid, userId),
    principal: async (userId, sid) => principal.all(sid, sid, userId),
    all: async () => all.all(),
    tariffs: async () => tariffs.all(),
  };
}

function mysqlDb() {
  const mysql = require('mysql2/promise');
  const pool = mysql.createPool({
    socketPath: need('OSPAB_PEER_MYSQL_SOCKET'),
    user: need('OSPAB_PEER_MYSQL_USER'),
    password: need('OSPAB_PEER_MYSQL_PASSWORD'),
    database: need('OSPAB_PEER_MYSQL_DATABASE'),
    charset: 'utf8mb4',
    connectionLimit: 16,    // as the harness's DBDMax per Apache child
    dateStrings: true,      // DATETIME(3) as the database has it, no time zone round trip
  });
  const rows = async (sql, args) => (await pool.execute(sql, args))[0];
  return {
    list: (userId, sid) => rows(LIST_SQL, [sid, sid, userId]),
    principal: (userId, sid) => rows(PRINCIPAL_SQL, [sid, sid, userId]),
    all: () => rows(ALL_SQL, []),
    tariffs: () => rows(TARIFFS_SQL, []),
  };
}

/* "YYYY-MM-DD HH:MM:SS[.fff]" as "YYYY-MM-DDTHH:MM:SS.fffZ" (ospab_time_api) */
function apiTime(v) {
  if (v == null) return null;
  const s = String(v);
  if (s.length < 19 || s[10] !== ' ') return s;
  const ms = s.length > 20 && s[19] === '.' ? (s.slice(20, 23).match(/^\d*/)[0] + '000').slice(0, 3)
                                             : '000';
  return `${s.slice(0, 10)}T${s.slice(11, 19)}.${ms}Z`;
}

/* seed 003's server object, keys in the order mod_ospab writes them */
function serverJson(v, tariffs) {
  let tariff;
  if (v.t_id != null) {
    tariff = { id: v.t_id, name: v.t_name, price: v.t_price };
  } else {
    const same = tariffs.find((t) => String(t.cores) === String(v.cpu)
      && String(t.memory) === String(v.ram) && String(t.disk) === String(v.disk));
    tariff = same ? { id: same.id, name: same.name, price: same.price }
                  : { id: null, name: `${v.cpu} vCPU / ${v.ram} MB / ${v.disk} GB`, price: null };
  }
  return {
    id: v.id,
    userId: v.user_id,
    tariffId: v.tariff_id,
    osId: v.os_id,
    name: v.name,
    status: v.status,
    proxmoxId: v.vmid,
    ipAddress: v.ip_address,
    createdAt: apiTime(v.created_at),
    updatedAt: apiTime(v.updated_at),
    os: v.tmpl_id != null
      ? { id: v.tmpl_id, name: v.tmpl_name, type: v.tmpl_type }
      : { id: null, name: v.os, type: /windows/i.test(v.os || '') ? 'windows' : 'linux' },
    tariff,
  };
}

async function listJson(db, rows) {
  const tariffs = rows.some((v) => v.t_id == null) ? await db.tariffs() : [];
  return rows.map((v) => serverJson(v, tariffs));
}

/* the claims mod_ospab requires besides what jsonwebtoken checks (lib/ospab_jwt.c) */
function claimsProblem(c) {
  if (!Number.isInteger(c.exp)) return 'exp claim missing';
  if (c.nbf !== undefined && !Number.isInteger(c.nbf)) return 'malformed claims';
  const sub = c.sub;
  if (!(Number.isInteger(sub) && sub > 0) && !(typeof sub === 'string' && /^[1-9]\d{0,14}$/.test(sub))) {
    return 'sub must be a user id';
  }
  if (c.role !== undefined && c.role !== 'user' && c.role !== 'admin') return 'unknown role';
  if (c.sid !== undefined && !(typeof c.sid === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(c.sid))) {
    return 'malformed claims';
  }
  return null;
}

function worker() {
  const express = require('express');
  const jwt = require('jsonwebtoken');
  const key = crypto.createSecretKey(Buffer.from(need('OSPAB_PEER_JWT_KEY'), 'utf8'));
  const db = need('OSPAB_PEER_DB') === 'sqlite' ? sqliteDb() : mysqlDb();
  const app = express();

  app.disable('x-powered-by');
  app.set('etag', false);

  const send = (res, status, body) => {
    res.status(status).set({
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    }).send(JSON.stringify(body) + '\n');
  };
  const unauthorized = (res, error, description) => {
    res.set('WWW-Authenticate', error
      ? `Bearer realm="ospab", error="${error}", error_description="${description}"`
      : 'Bearer realm="ospab"');
    send(res, 401, { error: description });
  };

  app.get('/api/server', async (req, res) => {
    const h = req.get('Authorization');
    if (!h) return unauthorized(res, null, 'missing bearer token');
    const m = /^Bearer +(\S+)$/i.exec(h);
    if (!m) return unauthorized(res, 'invalid_request', "Authorization must be 'Bearer <token>'");
    let claims;
    try {
      claims = jwt.verify(m[1], key, { algorithms: ['HS256'], clockTolerance: LEEWAY });
    } catch (e) {
      const why = e.name === 'TokenExpiredError' ? 'token expired'
        : e.name === 'NotBeforeError' ? 'token not yet valid'
        : e.message === 'invalid algorithm' ? 'algorithm not accepted'
        : e.message === 'jwt malformed' ? 'malformed token' : 'invalid signature';
      return unauthorized(res, 'invalid_token', why);
    }
    const problem = claimsProblem(claims);
    if (problem) return unauthorized(res, 'invalid_token', problem);

    let rows;
    try {
      const userId = Number(claims.sub), sid = claims.sid || '';
      rows = await db.list(userId, sid);
      if (!rows.length) rows = await db.principal(userId, sid);
      if (!rows.length) return unauthorized(res, 'invalid_token', 'unknown or disabled user');
      if (Number(rows[0].live) !== 1) {
        return unauthorized(res, 'invalid_token', 'session ended: log in again');
      }
      if (rows[0].role === 'admin') {
        const page = await db.all();
        if (page.length > PAGE_DEFAULT) {
          const next = page[PAGE_DEFAULT - 1].id;
          res.set('Link', `<${req.path}?limit=${PAGE_DEFAULT}&after=${next}>; rel="next"`);
          res.set('X-Next-Cursor', String(next));
        }
        return send(res, 200, await listJson(db, page.slice(0, PAGE_DEFAULT)));
      }
      send(res, 200, await listJson(db, rows[0].id === undefined ? [] : rows));
    } catch (e) {
      console.error(`peer: user lookup failed: ${e.message}`);
      send(res, 503, { error: 'database unavailable' });
    }
  });

  app.listen(Number(need('OSPAB_PEER_PORT')), '127.0.0.1');
}

if (cluster.isPrimary) {
  let listening = 0;
  for (let i = 0; i < WORKERS; ++i) cluster.fork();
  cluster.on('listening', () => {
    if (++listening === WORKERS) console.log(`peer: ${WORKERS} workers listening`);
  });
  // a worker that dies spoils the measurement: say so and stop, bench.py notices
  cluster.on('exit', (w, code, signal) => {
    console.error(`peer: worker ${w.process.pid} exited (${signal || code})`);
    process.exit(1);
  });
  const stop = () => {
    cluster.removeAllListeners('exit');
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  worker();
}
