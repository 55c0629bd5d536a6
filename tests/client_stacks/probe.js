// node-postgres (npm `pg`) client for the client-stack tests: new verify-full connections with
// client.<user>.crt/.key, files read anew for every connection from the directory the `current`
// link points at. Prints "ok NODE" or "fail NODE: why" per try.
const fs = require("fs");
const path = require("path");
const { Client } = require("pg");

const [current, user, ...nodes] = process.argv.slice(2);

async function attempt(node) {
  const dir = fs.realpathSync(current);
  const [host, port] = [node.slice(0, node.lastIndexOf(":")), Number(node.slice(node.lastIndexOf(":") + 1))];
  const client = new Client({
    host, port, user, database: "postgres", connectionTimeoutMillis: 5000,
    ssl: {
      rejectUnauthorized: true,
      ca: fs.readFileSync(path.join(dir, "ca.crt")),
      cert: fs.readFileSync(path.join(dir, `client.${user}.crt`)),
      key: fs.readFileSync(path.join(dir, `client.${user}.key`)),
    },
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
  } finally {
    await client.end().catch(() => {});
  }
}

(async () => {
  for (;;) {
    for (const node of nodes) {
      try {
        await attempt(node);
        console.log(`ok ${node}`);
      } catch (error) {
        console.log(`fail ${node}: ${String(error && error.message || error).replace(/\n/g, " ")}`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
})();
