// Checks of the deployment files that need no Docker engine: docker-compose.yml, Dockerfile, nginx config.
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"

const root = new URL("../", import.meta.url).pathname
const read = (file: string) => readFileSync(join(root, file), "utf8")

const parseYaml = async (text: string): Promise<unknown> => parse(text)

// ---------------------------------------------------------------------------------------------------------------
// docker-compose.yml

type Service = {
  image?: string
  build?: unknown
  command?: string | Array<string>
  environment?: Record<string, string | number | boolean | null> | Array<string>
  ports?: Array<string | number | { target: number }>
  volumes?: Array<string | { type?: string; source?: string }>
  depends_on?: Array<string> | Record<string, { condition?: string }>
  healthcheck?: { test?: string | Array<string>; disable?: boolean }
}
type Compose = { version?: unknown; services: Record<string, Service>; volumes?: Record<string, unknown> }

// Compose variable interpolation with the defaults only (`${VAR:-default}`, `${VAR-default}`, `${VAR}`, `$$`).
const interpolate = (value: string) =>
  value.replace(/\$\$|\$\{(\w+)(?::?-([^}]*))?\}/g, (match, _name, fallback) =>
    match === "$$" ? "$" : (fallback ?? "")
  )

const envOf = (service: Service): Record<string, string> => {
  const env = service.environment ?? {}
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry) => [entry.split("=")[0]!, entry.slice(entry.indexOf("=") + 1)]))
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, String(value ?? "")]))
}

const containerPorts = (service: Service) =>
  (service.ports ?? []).map((port) =>
    typeof port === "object" ? Number(port.target) : Number(interpolate(String(port)).split(":").pop()!.split("/")[0])
  )

const words = (value: string | Array<string> | undefined) =>
  value === undefined ? [] : Array.isArray(value) ? value.map(String) : value.split(/\s+/).filter(Boolean)

const loadCompose = async () => (await parseYaml(read("docker-compose.yml"))) as Compose

describe("docker-compose.yml", () => {
  it("parses as YAML in compose-spec form with services api, postgres, redis, mailpit", async () => {
    const compose = await loadCompose()
    expect(compose).toBeTypeOf("object")
    expect(compose.version).toBeUndefined()
    expect(Object.keys(compose.services).sort()).toEqual(["api", "mailpit", "postgres", "redis"])
    expect(compose.services.api!.build).toBeDefined()
    expect(compose.services.postgres!.image).toMatch(/^postgres:16\b/)
    expect(compose.services.redis!.image).toMatch(/^redis:7\b/)
    expect(compose.services.mailpit!.image).toMatch(/^axllent\/mailpit\b/)
  })

  it("gives every service a healthcheck", async () => {
    const { services } = await loadCompose()
    for (const [name, service] of Object.entries(services)) {
      const test = words(service.healthcheck?.test)
      expect(test.length, `${name} healthcheck`).toBeGreaterThan(1)
      expect(test[0], `${name} healthcheck`).not.toBe("NONE")
      expect(service.healthcheck?.disable, `${name} healthcheck`).not.toBe(true)
    }
    expect(words(services.api!.healthcheck!.test).join(" ")).toMatch(/node .*fetch\(.*\/health\/ready/)
    expect(words(services.postgres!.healthcheck!.test).join(" ")).toContain("pg_isready")
    expect(words(services.redis!.healthcheck!.test).join(" ")).toContain("redis-cli ping")
    expect(words(services.mailpit!.healthcheck!.test).join(" ")).toContain("/mailpit readyz")
  })

  it("starts api after postgres, redis and mailpit are healthy", async () => {
    const { services } = await loadCompose()
    const dependsOn = services.api!.depends_on
    expect(Array.isArray(dependsOn)).toBe(false)
    for (const name of ["postgres", "redis", "mailpit"]) {
      expect((dependsOn as Record<string, { condition?: string }>)[name]?.condition, name).toBe("service_healthy")
    }
  })

  it("publishes 3000 and 3001 and points api at the postgres, redis and mailpit services", async () => {
    const { services } = await loadCompose()
    const api = services.api!
    expect(containerPorts(api)).toEqual(expect.arrayContaining([3000, 3001]))

    const env = envOf(api)
    const database = new URL(interpolate(env.DATABASE_URL ?? ""))
    expect(database.protocol).toMatch(/^postgres(ql)?:$/)
    expect(database.hostname).toBe("postgres")
    const pg = envOf(services.postgres!)
    expect(decodeURIComponent(database.username)).toBe(interpolate(pg.POSTGRES_USER ?? ""))
    expect(decodeURIComponent(database.password)).toBe(interpolate(pg.POSTGRES_PASSWORD ?? ""))
    expect(database.pathname).toBe(`/${interpolate(pg.POSTGRES_DB ?? "")}`)

    const redis = new URL(interpolate(env.REDIS_URL ?? ""))
    expect(redis.protocol).toBe("redis:")
    expect(redis.hostname).toBe("redis")

    const mail = new URL(interpolate(env.MAIL_URL ?? ""))
    expect(mail.protocol).toBe("smtp:")
    expect(mail.hostname).toBe("mailpit")
    expect(mail.port).toBe("1025")

    // JWT_ISSUER: the server refuses REDIS_URL without it (every node of a cluster needs the same issuer).
    for (const key of ["PUBLIC_URL", "JWT_ISSUER", "ALLOWED_ORIGINS", "TRUST_PROXY"])
      expect(env[key], key).toBeDefined()
    expect(env.LOG_FORMAT).toBe("json")
  })

  it("uses overridable local-dev placeholders for credentials", async () => {
    const { services } = await loadCompose()
    expect(envOf(services.postgres!).POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:-[^}]+\}$/)
  })

  it("runs redis with an append-only file", async () => {
    const { services } = await loadCompose()
    const command = words(services.redis!.command)
    expect(command).toContain("--appendonly")
    expect(command[command.indexOf("--appendonly") + 1]).toBe("yes")
  })

  it("declares every named volume it mounts", async () => {
    const { services, volumes } = await loadCompose()
    const named = Object.values(services)
      .flatMap((service) => service.volumes ?? [])
      .map((volume) => (typeof volume === "string" ? volume.split(":")[0]! : (volume.source ?? "")))
      .filter((source) => /^[\w-]+$/.test(source))
    expect(named.length).toBeGreaterThan(0)
    for (const name of named) expect(Object.keys(volumes ?? {}), name).toContain(name)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile

type Instruction = { op: string; args: string }

const dockerfile = (): Array<Array<Instruction>> => {
  const lines = read("Dockerfile")
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
  const stages: Array<Array<Instruction>> = []
  for (const line of lines) {
    const [, op = "", args = ""] = /^(\w+)\s*(.*)$/.exec(line) ?? []
    const instruction = { op: op.toUpperCase(), args: args.replace(/\s+/g, " ") }
    if (instruction.op === "FROM") stages.push([])
    stages.at(-1)?.push(instruction)
  }
  return stages
}

const find = (stage: Array<Instruction>, op: string) => stage.filter((instruction) => instruction.op === op)

describe("Dockerfile", () => {
  it("builds every stage on node:20-bookworm-slim", () => {
    const stages = dockerfile()
    expect(stages.length).toBeGreaterThan(1)
    for (const stage of stages) {
      const base = stage[0]!.args.split(" ")[0]!
      const stageNames = stages.map((s) => s[0]!.args.split(/ as /i)[1]?.trim())
      if (!stageNames.includes(base)) expect(base).toBe("node:20-bookworm-slim")
    }
  })

  it("installs with yarn install --immutable after copying only the manifests, then builds", () => {
    const all = dockerfile().flat()
    const install = all.findIndex((i) => i.op === "RUN" && /\byarn install --immutable\b/.test(i.args))
    expect(install).toBeGreaterThan(-1)
    const manifests = all.findIndex(
      (i) => i.op === "COPY" && ["package.json", "yarn.lock", ".yarnrc.yml"].every((f) => i.args.split(" ").includes(f))
    )
    expect(manifests).toBeGreaterThan(-1)
    expect(manifests).toBeLessThan(install)
    const copySources = all.findIndex((i) => i.op === "COPY" && /^src\b/.test(i.args))
    expect(copySources).toBeGreaterThan(install)
    const build = all.findIndex((i) => i.op === "RUN" && /\byarn build\b/.test(i.args))
    expect(build).toBeGreaterThan(copySources)
    expect(all.some((i) => i.op === "RUN" && /corepack enable/.test(i.args))).toBe(true)
    expect(all.some((i) => i.op === "RUN" && /yarn workspaces focus --production/.test(i.args))).toBe(true)
  })

  it("runs the final stage as a non-root user with production settings", () => {
    const final = dockerfile().at(-1)!
    const user = find(final, "USER").at(-1)?.args
    expect(user).toBeDefined()
    expect(["root", "0", "0:0"]).not.toContain(user)

    const env = Object.fromEntries(
      find(final, "ENV").flatMap((i) => [...i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1], m[2]]))
    )
    expect(env.NODE_ENV).toBe("production")
    expect(env.DATA_DIR).toBe("/data")
    expect(env.HOST).toBe("0.0.0.0")
    expect(
      find(final, "VOLUME")
        .map((i) => i.args)
        .join(" ")
    ).toContain("/data")
    // "type": "module" lives in package.json: dist/src/main.js is ESM.
    expect(find(final, "COPY").some((i) => i.args.split(" ").includes("package.json"))).toBe(true)
    expect(find(final, "COPY").some((i) => /--from=\S+ \S*dist/.test(i.args))).toBe(true)
    expect(find(final, "RUN").some((i) => /yarn install/.test(i.args))).toBe(false)
  })

  it("has a node-based HEALTHCHECK on /health/live, EXPOSE 3000 3001 and CMD node (small young generation) dist/src/main.js", () => {
    const final = dockerfile().at(-1)!
    const healthcheck = find(final, "HEALTHCHECK").at(-1)?.args ?? ""
    expect(healthcheck).toMatch(/CMD \[?"?node"?/)
    expect(healthcheck).toContain("/health/live")
    expect(healthcheck).not.toMatch(/curl|wget/)

    const exposed = find(final, "EXPOSE").flatMap((i) => i.args.split(" "))
    expect(exposed).toEqual(expect.arrayContaining(["3000", "3001"]))

    const cmd = find(final, "CMD").at(-1)?.args ?? ""
    expect(JSON.parse(cmd)).toEqual(["node", "--max-semi-space-size=1", "dist/src/main.js"])
  })
})

// ---------------------------------------------------------------------------------------------------------------
// nginx

const nginxConf = () =>
  read("deploy/nginx/default.conf")
    .split("\n")
    .map((line) => line.replace(/(^|\s)#.*$/, ""))
    .join("\n")

// Bodies of every `<header> { ... }` block whose header matches, with nested braces balanced.
const blocks = (text: string, header: RegExp): Array<string> => {
  const found: Array<string> = []
  const pattern = new RegExp(`${header.source}\\s*\\{`, "g")
  for (const match of text.matchAll(pattern)) {
    let depth = 1
    let i = match.index + match[0].length
    const start = i
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "{") depth++
      if (text[i] === "}") depth--
    }
    if (depth !== 0) throw new Error(`unbalanced braces after ${match[0]}`)
    found.push(text.slice(start, i - 1))
  }
  return found
}

const directive = (body: string, name: string) =>
  [...body.matchAll(new RegExp(`(?:^|[;{}\\s])${name}\\s+([^;{}]+);`, "g"))].map((m) =>
    m[1]!.trim().replace(/\s+/g, " ")
  )

const upstreamServers = (text: string, name: string) => {
  const [body] = blocks(text, new RegExp(`\\bupstream\\s+${name}`))
  expect(body, `upstream ${name}`).toBeDefined()
  return directive(body!, "server")
}

const proxiedUpstream = (location: string) => {
  const [target] = directive(location, "proxy_pass")
  const name = /^http:\/\/([\w.-]+)\/?$/.exec(target ?? "")?.[1]
  expect(name, `proxy_pass ${target}`).toBeDefined()
  return name!
}

const servers = () => blocks(nginxConf(), /\bserver/)
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
const location = (server: string, path: string) => blocks(server, new RegExp(`\\blocation\\s+${escapeRegExp(path)}`))[0]
const tlsServer = () => servers().find((s) => directive(s, "listen").some((l) => /^443 .*\bssl\b/.test(l)))!

describe("deploy/nginx/default.conf", () => {
  it("redirects http to https but serves ACME challenges from a webroot", () => {
    const http = servers().find((s) => directive(s, "listen").some((l) => /^80\b/.test(l)))
    expect(http).toBeDefined()
    expect(directive(http!, "server_name")).toContain("api.famin.cloud")
    expect(directive(location(http!, "/") ?? "", "return")).toContain("301 https://$host$request_uri")
    const acme = location(http!, "/.well-known/acme-challenge/")
    expect(acme).toBeDefined()
    expect(directive(acme!, "root").length + directive(acme!, "alias").length).toBe(1)
  })

  it("terminates TLS on 443 with the certbot files and limits the body size", () => {
    const tls = tlsServer()
    expect(tls).toBeDefined()
    expect(directive(tls, "listen").some((l) => /\bhttp2\b/.test(l))).toBe(true)
    expect(directive(tls, "server_name")).toContain("api.famin.cloud")
    expect(directive(tls, "ssl_certificate")).toEqual(["/etc/letsencrypt/live/api.famin.cloud/fullchain.pem"])
    expect(directive(tls, "ssl_certificate_key")).toEqual(["/etc/letsencrypt/live/api.famin.cloud/privkey.pem"])
    expect(directive(tls, "include")).toContain("/etc/letsencrypt/options-ssl-nginx.conf")
    expect(directive(tls, "ssl_dhparam")).toHaveLength(1)
    expect(directive(tls, "client_max_body_size")).toEqual(["1m"])
  })

  it("proxies /ws to the socket upstream with the upgrade headers and a long read timeout", () => {
    const text = nginxConf()
    expect(blocks(text, /\bmap\s+\$http_upgrade\s+\$connection_upgrade/)).toHaveLength(1)
    const ws = location(tlsServer(), "/ws")
    expect(ws).toBeDefined()
    expect(upstreamServers(text, proxiedUpstream(ws!)).some((s) => /:3001\b/.test(s))).toBe(true)
    expect(directive(ws!, "proxy_http_version")).toEqual(["1.1"])
    const headers = directive(ws!, "proxy_set_header")
    expect(headers).toContain("Upgrade $http_upgrade")
    expect(headers).toContain("Connection $connection_upgrade")
    expect(headers).toContain("X-Forwarded-For $proxy_add_x_forwarded_for")
    const [timeout] = directive(ws!, "proxy_read_timeout")
    expect(Number.parseInt(timeout ?? "0", 10)).toBeGreaterThanOrEqual(600)
  })

  it("proxies / to the HTTP upstream with the forwarding headers", () => {
    const text = nginxConf()
    const http = location(tlsServer(), "/")
    expect(http).toBeDefined()
    expect(upstreamServers(text, proxiedUpstream(http!)).some((s) => /:3000\b/.test(s))).toBe(true)
    const headers = directive(http!, "proxy_set_header")
    for (const header of [
      "X-Forwarded-For $proxy_add_x_forwarded_for",
      "X-Forwarded-Proto $scheme",
      "X-Real-IP $remote_addr",
      "X-Request-Id $request_id"
    ]) {
      expect(headers).toContain(header)
    }
    expect(headers.some((h) => h.startsWith("X-Forwarded-Host "))).toBe(true)
  })

  const available = (command: string, args: Array<string>) => {
    const result = spawnSync(command, args, { stdio: "ignore" })
    return !result.error && result.status === 0
  }
  const hasNginx = available("nginx", ["-v"]) && available("openssl", ["version"])

  // nginx -t binds the listen addresses, and only root may bind 80 and 443: use 18080 and 18443 on loopback.
  const hasIpv6 = existsSync("/proc/net/if_inet6")
  const localListen = (_match: string, v6: string | undefined, port: string, options: string) => {
    const address = v6 ? (hasIpv6 ? "[::1]" : undefined) : "127.0.0.1"
    return address ? `listen ${address}:${Number(port) + 18000}${options};` : ""
  }

  // CI installs nginx and openssl (.ci/run), so there a missing binary fails instead of skipping.
  it.runIf(hasNginx || process.env.CI === "true")(
    "passes nginx -t with a self-signed certificate (needs nginx binary)",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "nginx-test-"))
      try {
        const le = join(dir, "letsencrypt")
        mkdirSync(join(le, "live", "api.famin.cloud"), { recursive: true })
        execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=api.famin.cloud",
            "-keyout",
            join(le, "live", "api.famin.cloud", "privkey.pem"),
            "-out",
            join(le, "live", "api.famin.cloud", "fullchain.pem")
          ],
          { stdio: "ignore" }
        )
        execFileSync("openssl", ["dhparam", "-dsaparam", "-out", join(le, "ssl-dhparams.pem"), "2048"], {
          stdio: "ignore"
        })
        // A stand-in for what certbot's nginx plugin writes there.
        writeFileSync(
          join(le, "options-ssl-nginx.conf"),
          [
            "ssl_session_cache shared:le_nginx_SSL:10m;",
            "ssl_session_timeout 1440m;",
            "ssl_session_tickets off;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_prefer_server_ciphers off;"
          ].join("\n")
        )

        const site = read("deploy/nginx/default.conf")
        expect(site).toContain("/etc/letsencrypt/")
        const check = (siteText: string) => {
          const local = siteText
            .replaceAll("/etc/letsencrypt/", `${le}/`)
            .replace(/\blisten\s+(\[::\]:)?(80|443)\b([^;]*);/g, localListen)
          writeFileSync(join(dir, "site.conf"), local)
          const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${dir}/${t};`)
          writeFileSync(
            join(dir, "nginx.conf"),
            [
              `pid ${dir}/nginx.pid;`,
              `error_log ${dir}/error.log;`,
              "events {}",
              "http {",
              "  access_log off;",
              ...temp,
              `  include ${dir}/site.conf;`,
              "}"
            ].join("\n")
          )
          return spawnSync("nginx", ["-t", "-p", dir, "-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf")], {
            encoding: "utf8"
          })
        }

        const ok = check(site)
        expect(ok.stderr).toContain("test is successful")
        expect(ok.status).toBe(0)

        // The harness must catch a broken config: without the map, $connection_upgrade is unknown.
        const broken = check(site.replace(/map \$http_upgrade \$connection_upgrade \{[^}]*\}/, ""))
        expect(broken.status).not.toBe(0)
        expect(broken.stderr).toContain("connection_upgrade")
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
    30_000
  )
})
