/**
 * Every setting the server reads, as Effect Config descriptors. Each layer reads the ones it
 * needs; `validateAll` reads them all at start so a bad value stops the server before anything
 * is opened. `.env.example` documents each of them (a test keeps the two in step).
 */
import { Config, ConfigError, Duration, Either, LogLevel, Option, Redacted } from "effect"
import { LiveLimits } from "../rpc/LiveProtocol.ts"

const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a port number between 1 and 65535", validation: (n) => n >= 1 && n <= 65535 }),
    Config.withDefault(fallback)
  )

const url = (name: string, protocols: ReadonlyArray<string>) =>
  Config.string(name).pipe(
    Config.mapOrFail((value) => {
      const parsed = parseUrl(value)
      return parsed !== undefined && protocols.includes(parsed.protocol)
        ? Either.right(Redacted.make(value))
        : Either.left(
            ConfigError.InvalidData([], `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`)
          )
    })
  )

const parseUrl = (value: string): URL | undefined => {
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

const origin = (value: string): Either.Either<string, string> => {
  const parsed = parseUrl(value)
  if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol) || parsed.origin !== value) {
    return Either.left(`"${value}" is not an origin like https://app.example.com (scheme, host, optional port)`)
  }
  return Either.right(value)
}

/** PUBLIC_URL as set (without a trailing slash), if it is. */
const publicUrlSetting = Config.option(
  Config.string("PUBLIC_URL").pipe(
    Config.mapOrFail((value) =>
      parseUrl(value) !== undefined && /^https?:$/.test(parseUrl(value)!.protocol)
        ? Either.right(value.replace(/\/+$/, ""))
        : Either.left(ConfigError.InvalidData([], "must be an http(s) URL such as https://api.example.com"))
    )
  )
)

/** NODE_ENV=production: the defaults of a public deployment (no /docs, verified emails required). */
const production = Config.string("NODE_ENV").pipe(
  Config.map((value) => value.trim().toLowerCase() === "production"),
  Config.withDefault(false)
)

/** A true/false setting whose default is whether this is production. */
const productionDefault = (name: string) =>
  Config.zipWith(Config.option(Config.boolean(name)), production, (set, isProduction) =>
    Option.getOrElse(set, () => isProduction)
  )

const logLevels: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

export const Settings = {
  production,
  /** Serve /docs: off in production unless DOCS_ENABLED=true. */
  docsEnabled: Config.zipWith(Config.option(Config.boolean("DOCS_ENABLED")), production, (set, isProduction) =>
    Option.getOrElse(set, () => !isProduction)
  ),
  /** Refuse login and invitation accept until the address is verified; on by default in production. */
  requireVerifiedEmail: productionDefault("REQUIRE_VERIFIED_EMAIL"),
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  port: port("PORT", 3000),
  wsPort: port("WS_PORT", 3001),
  /** The server's public base URL; by default `http://localhost:<PORT>`, so mail links follow the port. */
  publicUrl: Config.zipWith(publicUrlSetting, port("PORT", 3000), (url, p) =>
    Option.getOrElse(url, () => `http://localhost:${p}`)
  ),
  /** Where browsers open live sockets; by default PUBLIC_URL's host on WS_PORT (behind a proxy, set it). */
  publicWsUrl: Config.option(url("PUBLIC_WS_URL", ["ws:", "wss:"])),
  databaseUrl: Config.option(url("DATABASE_URL", ["postgres:", "postgresql:"])),
  redisUrl: Config.option(url("REDIS_URL", ["redis:", "rediss:"])),
  redisKeyPrefix: Config.string("REDIS_KEY_PREFIX").pipe(Config.withDefault("lps:")),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault("./.data")),
  allowedOrigins: Config.string("ALLOWED_ORIGINS").pipe(
    Config.mapOrFail((raw) => {
      const origins = raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
      const parsed = Either.all(origins.map(origin))
      return Either.mapLeft(parsed, (message) => ConfigError.InvalidData([], message))
    }),
    Config.withDefault([] as ReadonlyArray<string>)
  ),
  trustProxy: Config.string("TRUST_PROXY").pipe(
    Config.mapOrFail((raw) => {
      const value = raw.trim().toLowerCase()
      if (value === "false" || value === "0") return Either.right(0)
      if (value === "true") return Either.right(1)
      const hops = Number(value)
      return Number.isInteger(hops) && hops > 0 && hops < 32
        ? Either.right(hops)
        : Either.left(ConfigError.InvalidData([], "must be false, true or the number of proxy hops"))
    }),
    Config.withDefault(0)
  ),
  logLevel: Config.string("LOG_LEVEL").pipe(
    Config.mapOrFail((raw) => {
      const level = logLevels[raw.trim().toLowerCase()]
      return level === undefined
        ? Either.left(ConfigError.InvalidData([], `must be one of ${Object.keys(logLevels).join(", ")}`))
        : Either.right(level)
    }),
    Config.withDefault(LogLevel.Info)
  ),
  logFormat: Config.literal("json", "pretty")("LOG_FORMAT").pipe(Config.withDefault("pretty" as const)),
  maxBodySize: Config.integer("MAX_BODY_SIZE").pipe(
    Config.validate({ message: "must be a positive number of bytes", validation: (n) => n > 0 }),
    Config.withDefault(1024 * 1024)
  ),
  shutdownTimeout: Config.duration("SHUTDOWN_TIMEOUT").pipe(Config.withDefault(Duration.seconds(8))),
  jwtPrivateKeys: Config.option(Config.redacted("JWT_PRIVATE_KEYS")),
  mfaEncryptionKey: Config.option(Config.redacted("MFA_ENCRYPTION_KEY")),
  /**
   * Access tokens' `iss`: JWT_ISSUER, else PUBLIC_URL as set, else `http://localhost:3000` (never the
   * port-derived default, so nodes of one cluster on other ports still accept each other's tokens).
   */
  jwtIssuer: Config.all([
    Config.option(Config.string("JWT_ISSUER")),
    publicUrlSetting,
    Config.option(Config.string("REDIS_URL"))
  ]).pipe(
    Config.mapOrFail(([issuer, url, redis]) =>
      // With REDIS_URL set this node is one of a cluster: nodes accept only tokens of their own issuer,
      // and a default derived from each node's PUBLIC_URL would split them.
      Option.isNone(issuer) && Option.isSome(redis)
        ? Either.left(
            ConfigError.InvalidData(
              ["JWT_ISSUER"],
              "must be set when REDIS_URL is: every node of a cluster must sign and accept tokens under the same issuer"
            )
          )
        : Either.right(
            Option.some(
              Option.getOrElse(
                Option.orElse(issuer, () => url),
                () => "http://localhost:3000"
              )
            )
          )
    )
  ),
  jwtAudience: Config.string("JWT_AUDIENCE").pipe(Config.withDefault("live-permission-server")),
  accessTokenTtl: Config.duration("ACCESS_TOKEN_TTL").pipe(
    Config.validate({
      message: "must be between 30 seconds and 15 minutes",
      validation: (d) => Duration.between(d, { minimum: Duration.seconds(30), maximum: Duration.minutes(15) })
    }),
    Config.withDefault(Duration.minutes(15))
  ),
  refreshIdleTtl: Config.duration("REFRESH_IDLE_TTL").pipe(Config.withDefault(Duration.days(7))),
  refreshAbsoluteTtl: Config.duration("REFRESH_ABSOLUTE_TTL").pipe(Config.withDefault(Duration.days(30))),
  authIpRateLimit: Config.integer("AUTH_IP_RATE_LIMIT").pipe(
    Config.validate({ message: "must be a positive number of requests per minute", validation: (n) => n > 0 }),
    Config.withDefault(30)
  ),
  /** `smtp://user:pass@host:587` or `smtps://…:465`; unset writes messages to `DATA_DIR/mail`. */
  mailUrl: Config.option(url("MAIL_URL", ["smtp:", "smtps:"])),
  mailFrom: Config.string("MAIL_FROM").pipe(Config.withDefault("Live Permission Server <no-reply@localhost>")),
  /** How long published events stay in Postgres for consumers that missed them. */
  eventRetention: Config.duration("EVENT_RETENTION").pipe(Config.withDefault(Duration.days(7))),
  /** Entries the event stream keeps (`XADD MAXLEN ~`). */
  eventStreamMaxLength: Config.integer("EVENT_STREAM_MAX_LENGTH").pipe(
    Config.validate({ message: "must be a positive number of entries", validation: (n) => n > 0 }),
    Config.withDefault(100_000)
  ),
  /** The relay's safety poll: commits wake it at once (this node's directly, others' through LISTEN/NOTIFY). */
  outboxPollInterval: Config.duration("OUTBOX_POLL_INTERVAL").pipe(
    Config.validate({
      message: "must be between 10 milliseconds and 10 seconds",
      validation: (d) => Duration.between(d, { minimum: Duration.millis(10), maximum: Duration.seconds(10) })
    }),
    Config.withDefault(Duration.seconds(2))
  ),
  /** Live sockets one user may hold on one node. */
  maxSocketsPerUser: Config.integer("MAX_SOCKETS_PER_USER").pipe(
    Config.validate({ message: "must be a positive number of sockets", validation: (n) => n > 0 }),
    Config.withDefault(LiveLimits.socketsPerUser)
  ),
  /** The bearer token `GET /metrics` (on WS_PORT) requires (`Authorization: Bearer <token>`). */
  metricsToken: Config.option(Config.redacted("METRICS_TOKEN")),
  adminEmail: Config.option(Config.string("ADMIN_EMAIL")),
  adminPassword: Config.option(Config.redacted("ADMIN_PASSWORD"))
}

/** Reads every setting once; fails with the first bad one. */
export const validateAll = Config.all(Settings)
