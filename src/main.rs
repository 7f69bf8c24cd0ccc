//! The `mcp-sidecar` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mcp_sidecar::config::{
    AuthorizerConfig, Config, ConfigError, InboundAuth, McpServerSpec, TargetConfig, TargetSpec,
};
use tokio::net::TcpListener;

/// mimalloc rather than glibc's malloc: the request path allocates per call, and under load
/// glibc's malloc and free (arena locks shared by the runtime's workers, consolidation of
/// freed chunks) took about 15 % of the sidecar's CPU samples (README "Benchmarks", proxy
/// cost). Its C source is built by the `cc` crate, like aws-lc's: no new build requirement,
/// and `.ci/cross-build.sh`'s `CC_<triple>` covers cross builds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mcp-sidecar",
    version,
    about = "A stateless MCP relay for AgentCore Gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar from a config file, or for one upstream from flags/env.
    Serve(Source),
    /// Validate the configuration and print what `serve` would run.
    Check(Source),
    /// Check live what `serve` would need: targets reachable and initializable, credentials
    /// obtainable, JWT discovery and keys reachable, the clock right. One line per check;
    /// exit 1 when any problem is found.
    Doctor {
        #[command(flatten)]
        source: Source,
        /// Deadline of each check, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// An endpoint whose `Date` header is the reference time.
        #[arg(long, env = "MCP_SIDECAR_CLOCK_URL", default_value = mcp_sidecar::doctor::DEFAULT_CLOCK_URL)]
        clock_url: String,
        /// Largest clock difference accepted, in seconds.
        #[arg(long, default_value_t = 30)]
        max_clock_skew_secs: u64,
    },
    /// Run the built-in demo upstream and a sidecar in front of it, on loopback.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Run only the built-in demo MCP server (for trials and benchmarks).
    DemoUpstream {
        #[arg(long, default_value = "127.0.0.1:3001")]
        listen: String,
        /// Stateless, JSON answers (default: stateful sessions, SSE answers).
        #[arg(long)]
        stateless: bool,
        /// Add N synthetic tools (tool_00000 …).
        #[arg(long, default_value_t = 0)]
        extra_tools: usize,
        /// Serve MCP over stdin and stdout instead of HTTP (a stdio server; `--listen` and
        /// `--stateless` do not apply).
        #[arg(long)]
        stdio: bool,
    },
}

#[derive(Args, Clone)]
struct Source {
    /// TOML config file.
    #[arg(long, env = "MCP_SIDECAR_CONFIG")]
    config: Option<PathBuf>,
    /// Zero-file mode: the one upstream MCP server's URL.
    #[arg(long, env = "MCP_SIDECAR_UPSTREAM_URL", conflicts_with = "config")]
    upstream_url: Option<String>,
    /// Zero-file mode: the target name (tool prefix).
    #[arg(long, env = "MCP_SIDECAR_TARGET_NAME", default_value = "upstream")]
    target_name: String,
    /// Zero-file mode: "auto" (the newest the upstream speaks) or a version to speak exactly.
    #[arg(long, env = "MCP_SIDECAR_PROTOCOL_VERSION", requires = "upstream_url")]
    protocol_version: Option<String>,
    /// Listen address (overrides the config file).
    #[arg(long, env = "MCP_SIDECAR_LISTEN")]
    listen: Option<String>,
    /// MCP endpoint path (overrides the config file).
    #[arg(long, env = "MCP_SIDECAR_PATH")]
    path: Option<String>,
    /// "jwt" (with --jwt-discovery-url) or "none": accept unauthenticated callers beyond
    /// loopback (explicit opt-in).
    #[arg(long, env = "MCP_SIDECAR_INBOUND_AUTH")]
    inbound_auth: Option<String>,
    /// Adds a JWT authorizer: the IdP's OIDC discovery URL.
    #[arg(long, env = "MCP_SIDECAR_JWT_DISCOVERY_URL")]
    jwt_discovery_url: Option<String>,
    /// The authorizer's allowed clients (`client_id`), comma-separated.
    #[arg(
        long,
        env = "MCP_SIDECAR_JWT_ALLOWED_CLIENTS",
        value_delimiter = ',',
        requires = "jwt_discovery_url"
    )]
    jwt_allowed_clients: Vec<String>,
    /// The authorizer's allowed audiences, comma-separated.
    #[arg(
        long,
        env = "MCP_SIDECAR_JWT_ALLOWED_AUDIENCES",
        value_delimiter = ',',
        requires = "jwt_discovery_url"
    )]
    jwt_allowed_audiences: Vec<String>,
    /// The authorizer's allowed scopes (any one suffices), comma-separated.
    #[arg(
        long,
        env = "MCP_SIDECAR_JWT_ALLOWED_SCOPES",
        value_delimiter = ',',
        requires = "jwt_discovery_url"
    )]
    jwt_allowed_scopes: Vec<String>,
    /// Where each target's last good catalog is kept across restarts (overrides the file).
    #[arg(long, env = "MCP_SIDECAR_STATE_DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// Extra allowed Host values, comma-separated ("*" = any).
    #[arg(long, env = "MCP_SIDECAR_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
}

impl Source {
    fn resolve(&self) -> Result<Config, ConfigError> {
        let mut config = match (&self.config, &self.upstream_url) {
            (Some(path), _) => Config::load(path)?,
            (None, Some(url)) => {
                let spec = McpServerSpec {
                    url: url.clone(),
                    headers: Default::default(),
                    protocol_version: self.protocol_version.clone(),
                };
                let target = TargetConfig::new(&self.target_name, TargetSpec::McpServer(spec));
                Config::with_targets(vec![target])
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "config",
                    "give --config FILE or --upstream-url URL (or MCP_SIDECAR_CONFIG / MCP_SIDECAR_UPSTREAM_URL); \
                     `mcp-sidecar demo` runs a self-contained demo",
                ));
            }
        };
        if let Some(listen) = &self.listen {
            config.inbound.listen = listen.clone();
        }
        if let Some(path) = &self.path {
            config.inbound.path = path.clone();
        }
        if let Some(dir) = &self.state_dir {
            config.catalog.state_dir = Some(dir.clone());
        }
        match self.inbound_auth.as_deref() {
            None => {}
            Some("none") => config.inbound.auth = Some(InboundAuth::None),
            Some("jwt") => config.inbound.auth = Some(InboundAuth::Jwt),
            Some(other) => {
                return Err(ConfigError::new(
                    "inbound.auth",
                    format!("`{other}` is not a known mode (known: jwt, none)"),
                ));
            }
        }
        if let Some(discovery_url) = &self.jwt_discovery_url {
            let nonempty = |v: &[String]| {
                v.iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
            };
            let mut authorizer = AuthorizerConfig::new(discovery_url);
            authorizer.allowed_clients = nonempty(&self.jwt_allowed_clients);
            authorizer.allowed_audiences = nonempty(&self.jwt_allowed_audiences);
            authorizer.allowed_scopes = nonempty(&self.jwt_allowed_scopes);
            config.inbound.authorizers.push(authorizer);
        }
        config
            .inbound
            .allowed_hosts
            .extend(self.allowed_hosts.iter().filter(|h| !h.is_empty()).cloned());
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    if !matches!(command, Command::Serve(_) | Command::Demo { .. }) {
        mcp_sidecar::telemetry::init_plain();
    }
    match command {
        Command::Serve(source) => match source.resolve() {
            Ok(config) => {
                let telemetry = mcp_sidecar::telemetry::init(&config.telemetry)?;
                let options = mcp_sidecar::Options {
                    config_file: source.config.clone(),
                    config_source: Some(std::sync::Arc::new(move || source.resolve())),
                };
                let served = mcp_sidecar::serve(config, options).await;
                telemetry.shutdown().await;
                served.map(|()| ExitCode::SUCCESS)
            }
            Err(e) => config_error(e),
        },
        Command::Doctor {
            source,
            timeout_ms,
            clock_url,
            max_clock_skew_secs,
        } => match source.resolve() {
            Ok(config) => {
                let options = mcp_sidecar::doctor::Options {
                    timeout: std::time::Duration::from_millis(timeout_ms),
                    clock_url,
                    max_skew: std::time::Duration::from_secs(max_clock_skew_secs),
                };
                let findings = mcp_sidecar::doctor::run(&config, &options).await;
                let problems = findings.iter().filter(|f| f.outcome.is_err()).count();
                for finding in &findings {
                    println!("{}", finding.line());
                }
                println!(
                    "doctor: {} checks, {problems} problem{}",
                    findings.len(),
                    if problems == 1 { "" } else { "s" }
                );
                Ok(if problems == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            Err(e) => config_error(e),
        },
        Command::Check(source) => match source.resolve() {
            Ok(config) => {
                print_plan(&config).await?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => config_error(e),
        },
        Command::Demo { listen } => demo(&listen).await,
        Command::DemoUpstream {
            extra_tools,
            stdio: true,
            ..
        } => {
            mcp_sidecar::demo::serve_stdio(extra_tools).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoUpstream {
            listen,
            stateless,
            extra_tools,
            stdio: false,
        } => {
            let listener = TcpListener::bind(&listen).await?;
            mcp_sidecar::announce(&format!("http://{}/mcp", listener.local_addr()?));
            mcp_sidecar::demo::serve(listener, stateless, extra_tools).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn config_error(e: ConfigError) -> anyhow::Result<ExitCode> {
    eprintln!("error: {e}");
    Ok(ExitCode::from(2))
}

/// The demo: a real upstream on an ephemeral loopback port and the sidecar in front of it.
async fn demo(listen: &str) -> anyhow::Result<ExitCode> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}/mcp", upstream.local_addr()?);
    tokio::spawn(mcp_sidecar::demo::serve(upstream, false, 0));
    let mut config = Config::with_targets(vec![TargetConfig::mcp_server("demo", upstream_url)]);
    config.inbound.listen = listen.to_string();
    if let Err(e) = config.validate() {
        return config_error(e);
    }
    let telemetry = mcp_sidecar::telemetry::init(&config.telemetry)?;
    let listener = TcpListener::bind(config.listen_addr()?).await?;
    let running = mcp_sidecar::start(&config, listener).await?;
    mcp_sidecar::announce(&running.url);
    let url = &running.url;
    eprintln!(
        "\nmcp-sidecar demo is up. Try:\n  curl -s {url} -H 'Content-Type: application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n  \
         curl -s {url} -H 'Content-Type: application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"demo___add\",\"arguments\":{{\"a\":2,\"b\":3}}}}}}'\n"
    );
    running.wait().await?;
    telemetry.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn print_plan(config: &Config) -> anyhow::Result<()> {
    let i = &config.inbound;
    println!("inbound:");
    println!("  listen        {} (path {})", i.listen, i.path);
    let loopback = config.listen_addr()?.ip().is_loopback();
    let auth = match (i.auth_mode(), loopback) {
        (Some(InboundAuth::Jwt), _) => "JWT bearer tokens (authorizers below)",
        (Some(InboundAuth::None), false) => {
            "none — unauthenticated beyond loopback, explicitly allowed by inbound.auth = \"none\""
        }
        (Some(InboundAuth::None), true) => "none (loopback only)",
        (None, _) => {
            "none (loopback only; add an authorizer, or set inbound.auth = \"none\" to listen wider)"
        }
    };
    println!("  auth          {auth}");
    for a in &i.authorizers {
        let list = |v: &[String]| {
            if v.is_empty() {
                "any".to_string()
            } else {
                v.join(", ")
            }
        };
        println!("  authorizer    {}", a.discovery_url);
        println!("    clients     {}", list(&a.allowed_clients));
        println!("    audiences   {}", list(&a.allowed_audiences));
        println!("    scopes      {} (one of)", list(&a.allowed_scopes));
        for c in &a.custom_claims {
            println!(
                "    claim       {} {:?} {:?}",
                c.name, c.value_type, c.operator
            );
        }
        println!(
            "    keys        refreshed every {} s; unknown kid refetch at most every {} s; leeway {} s",
            a.jwks_refresh_secs, a.jwks_min_refetch_secs, a.leeway_secs
        );
    }
    for r in &i.tool_rules {
        println!(
            "  tool rule     {} → scopes [{}]{}",
            r.tools.join(", "),
            r.required_scopes.join(" "),
            if r.custom_claims.is_empty() {
                ""
            } else {
                " + claim conditions (hidden otherwise)"
            }
        );
    }
    println!(
        "  body limit    {} bytes, read within {} ms (head within {} ms)",
        i.max_body_bytes, i.body_read_timeout_ms, i.header_read_timeout_ms
    );
    println!(
        "  connections   at most {}, idle ones closed after {} s",
        i.max_connections, i.idle_timeout_secs
    );
    println!(
        "  in flight     at most {} requests (then 503, Retry-After: {} s)",
        i.max_in_flight, i.retry_after_secs
    );
    println!(
        "  shutdown      requests in flight get {} s to finish (after {} s of 503 on /readyz)",
        i.shutdown_grace_secs, i.drain_delay_secs
    );
    let hosts = if i.allowed_hosts.is_empty() {
        "loopback names only".to_string()
    } else {
        format!("loopback + {}", i.allowed_hosts.join(", "))
    };
    println!("  allowed hosts {hosts}");
    let c = &config.catalog;
    println!("catalog:");
    match &c.state_dir {
        Some(dir) => println!("  saved in      {} (restored at start-up)", dir.display()),
        None => println!("  saved in      nowhere (set catalog.state_dir to survive restarts)"),
    }
    if let Some(g) = &c.gateway_target_name {
        println!(
            "  gateway name  {g}: exposed names kept within {} characters",
            mcp_sidecar::catalog::naming::max_len_behind_gateway(Some(g))
        );
    }
    if c.normalize_schemas {
        println!("  schemas       normalized for AgentCore Gateway");
    }
    println!("  page size     {}", config.catalog.page_size);
    println!("  sync every    {} s", config.catalog.sync_interval_secs);
    if config.admin.enabled {
        let how = if config.admin.token.is_some() {
            "bearer token"
        } else {
            "loopback callers only"
        };
        println!("admin:          /admin/sync, /admin/catalog ({how})");
    }
    let t = &config.telemetry;
    println!("telemetry:");
    println!(
        "  logs          {:?} on stderr (MCP_SIDECAR_LOG_FORMAT, MCP_SIDECAR_LOG filter)",
        mcp_sidecar::telemetry::log_format(t)
    );
    if t.metrics {
        println!(
            "  metrics       GET {} (Prometheus; tool labels for at most {} tools)",
            t.metrics_path, t.max_tool_labels
        );
    } else {
        println!("  metrics       off");
    }
    match &t.otlp_endpoint {
        Some(endpoint) => println!(
            "  traces        OTLP/HTTP to {endpoint} as {} (sampling {})",
            t.service_name, t.sample_ratio
        ),
        None => println!(
            "  traces        off unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set"
        ),
    }
    let r = &config.reload;
    println!(
        "reload:         on SIGHUP{}",
        if r.watch {
            format!(
                ", and when the config file changes (checked every {} ms)",
                r.interval_ms
            )
        } else {
            String::new()
        }
    );
    if config.search.enabled {
        let s = &config.search;
        let listing = match s.expose {
            mcp_sidecar::config::Expose::All => "listed first, with every tool".to_string(),
            mcp_sidecar::config::Expose::SearchOnly => format!(
                "listed alone with pinned [{}]; every tool stays callable",
                s.pinned.join(", ")
            ),
        };
        println!("search:         tool {} ({listing})", s.tool_name);
        println!(
            "  ranking       BM25 + built-in static encoder (no network); limit {} (max {})",
            s.default_limit, s.max_limit
        );
    }
    println!("targets:");
    for t in &config.targets {
        // Building contacts nothing; it is what `serve` would run.
        let target = mcp_sidecar::targets::build(t)?;
        let about = target.describe();
        println!("  - {} ({}) {}", t.name, about.kind, about.endpoint);
        println!(
            "    tools exposed as {}",
            if t.prefix_tools {
                format!("{}___<tool>", t.name)
            } else {
                "<tool> (no prefix)".into()
            }
        );
        println!(
            "    timeouts      connect {} ms, request {} ms, sync {} ms",
            t.connect_timeout_ms, t.request_timeout_ms, t.sync_timeout_ms
        );
        println!(
            "    concurrency   {} in flight; queued requests wait up to {} ms",
            t.max_concurrency, t.queue_timeout_ms
        );
        println!("    credentials   {}", about.credentials);
        let cur = &t.curation;
        if !cur.allow_tools.is_empty()
            || !cur.deny_tools.is_empty()
            || cur.read_only
            || !cur.rename_tools.is_empty()
        {
            println!(
                "    curation      allow [{}] deny [{}]{}{}",
                cur.allow_tools.join(", "),
                cur.deny_tools.join(", "),
                if cur.read_only {
                    ", read-only tools only"
                } else {
                    ""
                },
                if cur.rename_tools.is_empty() {
                    String::new()
                } else {
                    format!(", {} renamed", cur.rename_tools.len())
                }
            );
        }
        println!(
            "    sync every    {} s",
            t.sync_interval_secs
                .unwrap_or(config.catalog.sync_interval_secs)
        );
        // Kinds with a definition (OpenAPI, Smithy) load it and report what maps to tools.
        for line in target.inspect().await {
            println!("    {line}");
        }
    }
    Ok(())
}
