//! The generator: a deterministic stream of realistic mixed log lines.
//!
//! Ten hosts (four web servers, four application servers, two batch workers) produce:
//! syslog from `sshd`, `cron`, `kernel` and `systemd` on every host (RFC 3164 file style), web
//! access logs in the combined format from nginx on the web servers, JSON application logs from
//! five services, Spring Boot style text logs with multi-line Java stack traces, and Celery style
//! worker logs with multi-line Python tracebacks. Clients, paths, users, products, search words
//! and user agents follow Zipf's law over bounded vocabularies; trace ids, order ids and task ids
//! are random (rare tokens); timestamps advance at a configured rate with jitter.

use std::collections::VecDeque;
use std::fmt::Write;

use bongsu_model::Labels;

use crate::rng::{cumulative, mix, Rng, Zipf};
use crate::time::Civil;

/// Where generated lines start and how fast log time advances.
#[derive(Debug, Clone)]
pub struct Config {
    /// Same seed, same lines.
    pub seed: u64,
    /// Timestamp of the first line, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Lines per second of log time (the fleet's whole rate).
    pub lines_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            // 2026-11-22T00:00:00Z
            start_ns: 1_795_305_600_000_000_000,
            lines_per_sec: 20_000,
        }
    }
}

/// The kind of log a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A syslog daemon's messages, `Mon DD HH:MM:SS host app[pid]: message`.
    Syslog,
    /// nginx access log, combined format.
    Access,
    /// JSON application log, one object per line.
    Json,
    /// Spring Boot text log with multi-line Java stack traces.
    Java,
    /// Celery worker text log with multi-line Python tracebacks.
    Python,
}

impl Source {
    /// The `source` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Syslog => "syslog",
            Source::Access => "access",
            Source::Json | Source::Java | Source::Python => "app",
        }
    }
}

/// One stream: a label set the generator writes lines for.
#[derive(Debug, Clone)]
pub struct Stream {
    /// `host`, `source` and `app`.
    pub labels: Labels,
    pub host: String,
    pub app: String,
    pub source: Source,
    /// Syslog facility code (RFC 5424) for sending this stream over syslog.
    pub facility: u8,
    /// A file name for this stream's lines: `<host>.<source>.<app>.log`.
    pub file_name: String,
}

/// One generated line.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub ts_ns: i64,
    /// Index into [`Generator::streams`].
    pub stream: usize,
    /// Syslog severity (0 emergency … 7 debug).
    pub severity: u8,
    /// Process id, for syslog senders.
    pub pid: u32,
    /// The whole line as it appears in a log file (no newline).
    pub text: String,
    /// Where the message starts in `text` (after a syslog file prefix; 0 for other sources).
    pub msg_start: usize,
}

impl Line {
    /// The message without a syslog file prefix.
    pub fn message(&self) -> &str {
        self.text.get(self.msg_start..).unwrap_or(&self.text)
    }
}

const HOSTS: [&str; 10] = [
    "web-01", "web-02", "web-03", "web-04", "app-01", "app-02", "app-03", "app-04", "batch-01",
    "batch-02",
];
const SYSLOG_APPS: [(&str, u8); 4] = [("sshd", 10), ("cron", 9), ("kernel", 0), ("systemd", 3)];
const JSON_SERVICES: [&str; 5] = ["checkout", "search", "payments", "inventory", "auth"];

const USER_AGENTS: [&str; 24] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.80",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "okhttp/4.12.0",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "python-requests/2.32.3",
    "Prometheus/2.53.0",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Go-http-client/1.1",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Mozilla/5.0 zgrab/0.x",
    "kube-probe/1.30",
    "Wget/1.21.4",
];

const WORDS: [&str; 64] = [
    "shoes",
    "jacket",
    "phone",
    "laptop",
    "charger",
    "headphones",
    "coffee",
    "mug",
    "desk",
    "chair",
    "lamp",
    "backpack",
    "watch",
    "camera",
    "tripod",
    "keyboard",
    "mouse",
    "monitor",
    "cable",
    "adapter",
    "case",
    "bottle",
    "tent",
    "sleeping",
    "bag",
    "boots",
    "socks",
    "scarf",
    "gloves",
    "hat",
    "sunglasses",
    "wallet",
    "belt",
    "ring",
    "necklace",
    "earrings",
    "perfume",
    "soap",
    "towel",
    "pillow",
    "blanket",
    "kettle",
    "toaster",
    "blender",
    "pan",
    "knife",
    "fork",
    "spoon",
    "plate",
    "bowl",
    "glass",
    "wine",
    "beer",
    "tea",
    "chocolate",
    "cookies",
    "pasta",
    "rice",
    "oil",
    "salt",
    "pepper",
    "sugar",
    "flour",
    "eggs",
];

const CATEGORIES: [&str; 12] = [
    "electronics",
    "fashion",
    "home",
    "kitchen",
    "outdoor",
    "sports",
    "beauty",
    "toys",
    "books",
    "garden",
    "office",
    "grocery",
];

const USERS: [&str; 12] = [
    "deploy", "ubuntu", "admin", "backup", "ansible", "jenkins", "alice", "bob", "carol", "dave",
    "postgres", "monitor",
];
const BAD_USERS: [&str; 16] = [
    "root", "admin", "test", "user", "oracle", "git", "ftpuser", "pi", "guest", "support", "ubnt",
    "postgres", "mysql", "hadoop", "www", "steam",
];
const CRON_CMDS: [&str; 8] = [
    "cd / && run-parts --report /etc/cron.hourly",
    "/usr/local/bin/backup.sh --incremental >/dev/null 2>&1",
    "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }",
    "/usr/bin/certbot renew --quiet",
    "/opt/app/bin/rotate-logs --keep 14",
    "[ -x /usr/lib/php/sessionclean ] && /usr/lib/php/sessionclean",
    "/usr/local/bin/metrics-push.sh",
    "flock -n /tmp/sync.lock /opt/app/bin/sync-catalog",
];
const UNITS: [&str; 12] = [
    "logrotate.service",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "phpsessionclean.service",
    "man-db.service",
    "systemd-tmpfiles-clean.service",
    "certbot.service",
    "fstrim.service",
    "node-exporter.service",
    "motd-news.service",
    "sysstat-collect.service",
    "e2scrub_all.service",
];

const JAVA_CLASSES: [&str; 10] = [
    "c.s.orders.OrderController",
    "c.s.orders.OrderService",
    "c.s.orders.InventoryClient",
    "c.s.orders.PaymentClient",
    "o.h.engine.jdbc.spi.SqlExceptionHelper",
    "c.zaxxer.hikari.pool.HikariPool",
    "o.s.web.servlet.DispatcherServlet",
    "c.s.orders.CartRepository",
    "o.a.kafka.clients.producer.KafkaProducer",
    "c.s.orders.PricingEngine",
];
const JAVA_EXCEPTIONS: [(&str, &str); 6] = [
    (
        "java.lang.IllegalStateException",
        "Inventory reservation failed for sku",
    ),
    ("java.net.SocketTimeoutException", "Read timed out"),
    (
        "org.springframework.dao.DataIntegrityViolationException",
        "could not execute statement; constraint [orders_pkey]",
    ),
    (
        "java.lang.NullPointerException",
        "Cannot invoke \"com.shop.orders.Cart.getItems()\" because \"cart\" is null",
    ),
    (
        "com.shop.orders.PaymentDeclinedException",
        "Payment declined by provider: insufficient_funds",
    ),
    (
        "org.apache.kafka.common.errors.TimeoutException",
        "Expiring 12 record(s) for orders-events-3: 30012 ms has passed since batch creation",
    ),
];
const JAVA_FRAMES: [&str; 20] = [
    "com.shop.orders.InventoryClient.reserve(InventoryClient.java:88)",
    "com.shop.orders.OrderService.placeOrder(OrderService.java:142)",
    "com.shop.orders.OrderController.create(OrderController.java:61)",
    "com.shop.orders.PaymentClient.charge(PaymentClient.java:117)",
    "com.shop.orders.CartRepository.findByCustomer(CartRepository.java:45)",
    "com.shop.orders.PricingEngine.total(PricingEngine.java:203)",
    "java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
    "java.base/java.lang.reflect.Method.invoke(Method.java:580)",
    "org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:255)",
    "org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod.invokeAndHandle(ServletInvocableHandlerMethod.java:118)",
    "org.springframework.web.servlet.DispatcherServlet.doDispatch(DispatcherServlet.java:1089)",
    "org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)",
    "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:590)",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:140)",
    "org.springframework.web.filter.OncePerRequestFilter.doFilter(OncePerRequestFilter.java:116)",
    "org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:167)",
    "org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:391)",
    "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1736)",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1144)",
    "java.base/java.lang.Thread.run(Thread.java:1583)",
];
const PY_TASKS: [&str; 8] = [
    "send_email",
    "sync_inventory",
    "generate_invoice",
    "resize_image",
    "refresh_search_index",
    "charge_subscription",
    "export_report",
    "cleanup_sessions",
];
const PY_ERRORS: [(&str, &str, &str); 4] = [
    ("KeyError", "'sku'", "stock = payload[\"sku\"]"),
    (
        "ConnectionError",
        "HTTPSConnectionPool(host='smtp.internal', port=465): Max retries exceeded",
        "resp = session.post(url, json=body, timeout=10)",
    ),
    (
        "ValueError",
        "invalid literal for int() with base 10: 'N/A'",
        "qty = int(row[\"quantity\"])",
    ),
    (
        "TimeoutError",
        "timed out waiting for lock inventory:sync",
        "with redis_lock(key, timeout=30):",
    ),
];

/// The whole set of vocabularies and samplers, built once per generator.
#[derive(Debug)]
struct Vocab {
    clients: Zipf,
    scanners: Zipf,
    products: Zipf,
    words: Zipf,
    agents: Zipf,
    users: Zipf,
    customers: Zipf,
    units: Zipf,
    frames: Zipf,
    classes: Zipf,
    source_weights: Vec<u32>,
    syslog_weights: Vec<u32>,
    status_weights: Vec<u32>,
}

const STATUSES: [u16; 10] = [200, 304, 301, 302, 404, 401, 403, 500, 502, 503];

impl Vocab {
    fn new() -> Self {
        Self {
            clients: Zipf::new(50_000, 1.05),
            scanners: Zipf::new(2_000, 1.2),
            products: Zipf::new(20_000, 1.1),
            words: Zipf::new(WORDS.len(), 1.0),
            agents: Zipf::new(USER_AGENTS.len(), 1.3),
            users: Zipf::new(USERS.len(), 1.2),
            customers: Zipf::new(200_000, 1.0),
            units: Zipf::new(UNITS.len(), 1.0),
            frames: Zipf::new(JAVA_FRAMES.len(), 0.6),
            classes: Zipf::new(JAVA_CLASSES.len(), 1.0),
            // access, json, java, python, syslog
            source_weights: cumulative(&[35, 27, 13, 5, 20]),
            // sshd, cron, kernel, systemd
            syslog_weights: cumulative(&[6, 3, 3, 8]),
            status_weights: cumulative(&[8_300, 700, 150, 100, 500, 80, 40, 60, 40, 30]),
        }
    }
}

/// Produces lines one at a time; deterministic for a seed.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    vocab: Vocab,
    streams: Vec<Stream>,
    /// Stream index per (source kind, host) for quick lookup.
    syslog_idx: Vec<[usize; 4]>,
    access_idx: Vec<usize>,
    json_idx: Vec<usize>,
    java_idx: Vec<usize>,
    python_idx: Vec<usize>,
    now_ns: i64,
    step_ns: i64,
    cached_sec: i64,
    /// This second's timestamp in the styles the formats use.
    ts_bsd: String,
    ts_clf: String,
    ts_iso_t: String,
    ts_iso_space: String,
    /// Continuation lines of a multi-line event: (stream, severity, pid, text).
    pending: VecDeque<(usize, u8, u32, String)>,
    /// Recent trace ids; requests log several lines under one trace.
    traces: [u128; 8],
    rare: String,
    kernel_uptime_us: u64,
}

impl Generator {
    pub fn new(cfg: Config) -> Self {
        let mut streams = Vec::new();
        let mut push = |host: &str, source: Source, app: &str, facility: u8| {
            let labels = Labels::from_pairs([
                ("host", host.to_owned()),
                ("source", source.as_str().to_owned()),
                ("app", app.to_owned()),
            ])
            .unwrap_or_else(|_| Labels::empty());
            streams.push(Stream {
                labels,
                host: host.to_owned(),
                app: app.to_owned(),
                source,
                facility,
                file_name: format!("{host}.{}.{app}.log", source.as_str()),
            });
            streams.len() - 1
        };
        let mut syslog_idx = Vec::new();
        for h in HOSTS {
            let mut ids = [0; 4];
            for (i, (app, fac)) in SYSLOG_APPS.iter().enumerate() {
                ids[i] = push(h, Source::Syslog, app, *fac);
            }
            syslog_idx.push(ids);
        }
        let access_idx = HOSTS[0..4]
            .iter()
            .map(|h| push(h, Source::Access, "nginx", 16))
            .collect();
        // Each JSON service runs on two of the four app servers.
        let mut json_idx = Vec::new();
        for (i, svc) in JSON_SERVICES.iter().enumerate() {
            json_idx.push(push(HOSTS[4 + i % 4], Source::Json, svc, 16));
            json_idx.push(push(HOSTS[4 + (i + 1) % 4], Source::Json, svc, 16));
        }
        let java_idx = HOSTS[4..8]
            .iter()
            .map(|h| push(h, Source::Java, "orders", 16))
            .collect();
        let python_idx = HOSTS[8..10]
            .iter()
            .map(|h| push(h, Source::Python, "worker", 16))
            .collect();
        let mut rng = Rng::new(cfg.seed);
        let traces =
            std::array::from_fn(|_| u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()));
        Self {
            rng,
            vocab: Vocab::new(),
            streams,
            syslog_idx,
            access_idx,
            json_idx,
            java_idx,
            python_idx,
            now_ns: cfg.start_ns,
            step_ns: 1_000_000_000 / i64::from(cfg.lines_per_sec.max(1)),
            cached_sec: i64::MIN,
            ts_bsd: String::new(),
            ts_clf: String::new(),
            ts_iso_t: String::new(),
            ts_iso_space: String::new(),
            pending: VecDeque::new(),
            traces,
            rare: String::new(),
            kernel_uptime_us: 1_234_567_890,
        }
    }

    /// Every stream the generator writes to; [`Line::stream`] indexes this.
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// The most recent random id written (a trace, order or task id): a token that occurs in
    /// a handful of lines at most, for rare-token searches.
    pub fn last_rare_token(&self) -> &str {
        &self.rare
    }

    /// Writes the next line into `out` (reusing its buffer).
    pub fn next_line(&mut self, out: &mut Line) {
        out.text.clear();
        out.msg_start = 0;
        if let Some((stream, sev, pid, text)) = self.pending.pop_front() {
            // Continuation lines share their event's time plus one nanosecond each.
            self.now_ns += 1;
            out.ts_ns = self.now_ns;
            out.stream = stream;
            out.severity = sev;
            out.pid = pid;
            out.text.push_str(&text);
            return;
        }
        let jitter = self.rng.below(self.step_ns as u64 + 1) as i64;
        self.now_ns += self.step_ns / 2 + jitter;
        out.ts_ns = self.now_ns;
        let sec = self.now_ns.div_euclid(1_000_000_000);
        if sec != self.cached_sec {
            self.cached_sec = sec;
            let c = Civil::from_unix(sec);
            for b in [
                &mut self.ts_bsd,
                &mut self.ts_clf,
                &mut self.ts_iso_t,
                &mut self.ts_iso_space,
            ] {
                b.clear();
            }
            c.bsd(&mut self.ts_bsd);
            c.clf(&mut self.ts_clf);
            c.iso('T', &mut self.ts_iso_t);
            c.iso(' ', &mut self.ts_iso_space);
        }
        match self.rng.weighted(&self.vocab.source_weights) {
            0 => self.access(out),
            1 => self.json(out),
            2 => self.java(out),
            3 => self.python(out),
            _ => self.syslog(out),
        }
    }

    fn millis(&self) -> u32 {
        (self.now_ns.rem_euclid(1_000_000_000) / 1_000_000) as u32
    }

    fn client_ip(&mut self, out: &mut String) {
        let r = self.vocab.clients.sample(&mut self.rng) as u64;
        let h = mix(r + 1);
        let _ = write!(
            out,
            "{}.{}.{}.{}",
            [81, 92, 185, 203, 46, 78, 151, 212, 37, 5][(h % 10) as usize],
            (h >> 8) & 0xff,
            (h >> 16) & 0xff,
            1 + ((h >> 24) % 254)
        );
    }

    fn scanner_ip(&mut self, out: &mut String) {
        let r = self.vocab.scanners.sample(&mut self.rng) as u64;
        let h = mix(r + 0x5ca0);
        let _ = write!(
            out,
            "{}.{}.{}.{}",
            [45, 193, 141, 218, 61, 103][(h % 6) as usize],
            (h >> 8) & 0xff,
            (h >> 16) & 0xff,
            1 + ((h >> 24) % 254)
        );
    }

    fn new_uuid(&mut self, out: &mut String) {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        let start = out.len();
        let _ = write!(
            out,
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        );
        self.rare.clear();
        self.rare.push_str(&out[start..]);
    }

    fn trace(&mut self) -> u128 {
        let slot = self.rng.below(self.traces.len() as u64) as usize;
        if self.rng.chance(0.2) {
            self.traces[slot] =
                u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64());
        }
        self.traces[slot]
    }

    fn access(&mut self, out: &mut Line) {
        let host = self.rng.below(self.access_idx.len() as u64) as usize;
        out.stream = self.access_idx[host];
        out.pid = 1200 + host as u32;
        let t = &mut out.text;
        let scanner = self.rng.chance(0.02);
        if scanner {
            self.scanner_ip(t);
        } else {
            self.client_ip(t);
        }
        t.push_str(" - ");
        if !scanner && self.rng.chance(0.03) {
            let _ = write!(t, "u{}", self.vocab.customers.sample(&mut self.rng));
        } else {
            t.push('-');
        }
        t.push_str(" [");
        t.push_str(&self.ts_clf);
        t.push_str("] \"");
        let method = if scanner {
            "GET"
        } else {
            match self.rng.below(100) {
                0..=84 => "GET",
                85..=94 => "POST",
                95..=97 => "PUT",
                98 => "DELETE",
                _ => "HEAD",
            }
        };
        t.push_str(method);
        t.push(' ');
        let mut is_static = false;
        let mut status = STATUSES[self.rng.weighted(&self.vocab.status_weights)];
        if scanner {
            t.push_str(
                [
                    "/wp-login.php",
                    "/.env",
                    "/admin/config.php",
                    "/.git/config",
                    "/phpmyadmin/index.php",
                    "/cgi-bin/luci/;stok=/locale",
                    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
                ][self.rng.below(7) as usize],
            );
            status = 404;
        } else {
            match self.rng.below(100) {
                0..=29 => {
                    let _ = write!(
                        t,
                        "/api/v1/products/{}",
                        self.vocab.products.sample(&mut self.rng)
                    );
                }
                30..=39 => {
                    let _ = write!(
                        t,
                        "/api/v1/products?category={}&page={}",
                        CATEGORIES[self.rng.below(CATEGORIES.len() as u64) as usize],
                        1 + self.rng.below(8)
                    );
                }
                40..=49 => {
                    let _ = write!(
                        t,
                        "/api/v1/search?q={}",
                        WORDS[self.vocab.words.sample(&mut self.rng)]
                    );
                    if self.rng.chance(0.3) {
                        let _ = write!(t, "+{}", WORDS[self.vocab.words.sample(&mut self.rng)]);
                    }
                }
                50..=64 => {
                    is_static = true;
                    let files = [
                        "/static/js/app.3f9a1c2e.js",
                        "/static/js/vendor.8b21d0f4.js",
                        "/static/css/main.c41e9a7b.css",
                        "/favicon.ico",
                        "/static/fonts/inter-var.woff2",
                    ];
                    t.push_str(files[self.rng.below(files.len() as u64) as usize]);
                }
                65..=74 => {
                    is_static = true;
                    let _ = write!(
                        t,
                        "/images/products/{}_{}.webp",
                        self.vocab.products.sample(&mut self.rng),
                        [320, 640, 1280][self.rng.below(3) as usize]
                    );
                }
                75..=82 => t.push_str("/api/v1/cart"),
                83..=87 => {
                    let _ = write!(
                        t,
                        "/api/v1/cart/items/{}",
                        self.vocab.products.sample(&mut self.rng)
                    );
                }
                88..=91 => t.push_str("/checkout"),
                92..=94 => t.push('/'),
                95..=96 => t.push_str("/login"),
                97 => t.push_str("/robots.txt"),
                _ => t.push_str("/healthz"),
            }
            if is_static && status == 200 && self.rng.chance(0.25) {
                status = 304;
            }
        }
        let bytes = match status {
            304 => 0,
            301 | 302 => 162,
            404 => 153,
            500..=599 => 166 + self.rng.below(40),
            _ if is_static => 2_000 + (mix(t.len() as u64) % 400_000),
            _ => {
                // Roughly log-normal response sizes.
                let e = self.rng.unit() + self.rng.unit() + self.rng.unit();
                (200.0 * (e * 1.6).exp()) as u64
            }
        };
        let _ = write!(t, " HTTP/1.1\" {status} {bytes} \"");
        if scanner || self.rng.chance(0.45) {
            t.push('-');
        } else if self.rng.chance(0.6) {
            t.push_str("https://shop.example.com/");
            if self.rng.chance(0.5) {
                let _ = write!(t, "products/{}", self.vocab.products.sample(&mut self.rng));
            }
        } else {
            t.push_str("https://www.google.com/");
        }
        t.push_str("\" \"");
        let ua = if scanner {
            USER_AGENTS[21]
        } else {
            USER_AGENTS[self.vocab.agents.sample(&mut self.rng)]
        };
        t.push_str(ua);
        t.push('"');
        out.severity = if status >= 500 { 3 } else { 6 };
    }

    fn json(&mut self, out: &mut Line) {
        let i = self.rng.below(self.json_idx.len() as u64) as usize;
        out.stream = self.json_idx[i];
        out.pid = 1;
        let svc = JSON_SERVICES[i / 2];
        let host = HOSTS[4 + (i / 2 + i % 2) % 4];
        let level = match self.rng.below(1000) {
            0..=19 => "error",
            20..=79 => "warn",
            80..=119 => "debug",
            _ => "info",
        };
        out.severity = match level {
            "error" => 3,
            "warn" => 4,
            "debug" => 7,
            _ => 6,
        };
        let ms = self.millis();
        let trace = self.trace();
        // One span per service hop: a service logging twice within a trace keeps its span.
        let span = mix((trace as u64) ^ (i as u64 / 2 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let t = &mut out.text;
        t.push_str("{\"ts\":\"");
        t.push_str(&self.ts_iso_t);
        let _ = write!(
            t,
            ".{ms:03}Z\",\"level\":\"{level}\",\"service\":\"{svc}\",\"host\":\"{host}\",\"trace_id\":\"{trace:032x}\",\"span_id\":\"{span:016x}\","
        );
        let dur = {
            let e = self.rng.unit() + self.rng.unit();
            (3.0 * (e * 2.2).exp()) as u64
        };
        let cust = self.vocab.customers.sample(&mut self.rng);
        match (svc, level) {
            ("checkout", "error") | ("payments", "error") => {
                let _ = write!(
                    t,
                    "\"msg\":\"payment failed\",\"customer_id\":\"c-{cust}\",\"provider\":\"{}\",\"error\":\"{}\",\"duration_ms\":{dur}",
                    ["stripe", "adyen", "paypal"][self.rng.below(3) as usize],
                    ["card_declined", "insufficient_funds", "upstream timeout after 5000ms", "expired_card"][self.rng.below(4) as usize]
                );
            }
            ("checkout", _) => {
                t.push_str("\"msg\":\"order placed\",\"order_id\":\"");
                self.new_uuid(t);
                let _ = write!(
                    t,
                    "\",\"customer_id\":\"c-{cust}\",\"items\":{},\"amount_cents\":{},\"currency\":\"{}\",\"duration_ms\":{dur}",
                    1 + self.rng.below(6),
                    99 * (1 + self.rng.below(300)),
                    ["EUR", "EUR", "USD", "GBP"][self.rng.below(4) as usize]
                );
            }
            ("search", _) => {
                let _ = write!(
                    t,
                    "\"msg\":\"search executed\",\"query\":\"{}\",\"hits\":{},\"index\":\"products-v{}\",\"duration_ms\":{dur}",
                    WORDS[self.vocab.words.sample(&mut self.rng)],
                    self.rng.below(2_000),
                    7 + self.rng.below(2)
                );
            }
            ("payments", _) => {
                let _ = write!(
                    t,
                    "\"msg\":\"charge authorized\",\"customer_id\":\"c-{cust}\",\"provider\":\"{}\",\"amount_cents\":{},\"duration_ms\":{dur}",
                    ["stripe", "adyen", "paypal"][self.rng.below(3) as usize],
                    99 * (1 + self.rng.below(300))
                );
            }
            ("inventory", _) => {
                let _ = write!(
                    t,
                    "\"msg\":\"{}\",\"sku\":\"SKU-{}\",\"warehouse\":\"{}\",\"qty\":{},\"duration_ms\":{dur}",
                    ["stock reserved", "stock released", "stock level low", "reservation expired"][self.rng.below(4) as usize],
                    self.vocab.products.sample(&mut self.rng),
                    ["fra1", "ams2", "lhr1", "waw1"][self.rng.below(4) as usize],
                    self.rng.below(50)
                );
            }
            (_, "warn") => {
                let _ = write!(
                    t,
                    "\"msg\":\"login failed\",\"user\":\"c-{cust}\",\"reason\":\"{}\",\"attempt\":{}",
                    ["bad_password", "unknown_user", "mfa_timeout", "locked"][self.rng.below(4) as usize],
                    1 + self.rng.below(5)
                );
            }
            _ => {
                let _ = write!(
                    t,
                    "\"msg\":\"token issued\",\"user\":\"c-{cust}\",\"client\":\"{}\",\"ttl_s\":3600,\"duration_ms\":{dur}",
                    ["web", "ios", "android", "partner-api"][self.rng.below(4) as usize]
                );
            }
        }
        t.push('}');
    }

    fn java(&mut self, out: &mut Line) {
        let i = self.rng.below(self.java_idx.len() as u64) as usize;
        out.stream = self.java_idx[i];
        out.pid = 1;
        let error = self.rng.chance(0.015);
        let warn = !error && self.rng.chance(0.04);
        let ms = self.millis();
        let thread = 1 + self.rng.below(200);
        let class = JAVA_CLASSES[self.vocab.classes.sample(&mut self.rng)];
        let t = &mut out.text;
        t.push_str(&self.ts_iso_space);
        let level = if error {
            "ERROR"
        } else if warn {
            " WARN"
        } else {
            " INFO"
        };
        out.severity = if error {
            3
        } else if warn {
            4
        } else {
            6
        };
        let _ = write!(
            t,
            ".{ms:03} {level} 1 --- [nio-8080-exec-{thread}] {class:<40} : "
        );
        let cust = self.vocab.customers.sample(&mut self.rng);
        if error {
            let (ex, msg) = JAVA_EXCEPTIONS[self.rng.below(JAVA_EXCEPTIONS.len() as u64) as usize];
            let _ = write!(
                t,
                "Request processing failed for customer c-{cust}: {ex}: {msg}"
            );
            let stream = out.stream;
            self.pending
                .push_back((stream, 3, 1, format!("{ex}: {msg}")));
            let frames = 6 + self.rng.below(14) as usize;
            for f in 0..frames {
                let frame = if f < 2 {
                    JAVA_FRAMES[self.rng.below(6) as usize]
                } else {
                    JAVA_FRAMES[self.vocab.frames.sample(&mut self.rng)]
                };
                self.pending
                    .push_back((stream, 3, 1, format!("\tat {frame}")));
            }
            if self.rng.chance(0.5) {
                self.pending.push_back((
                    stream,
                    3,
                    1,
                    "Caused by: java.net.SocketTimeoutException: Read timed out".to_owned(),
                ));
                self.pending.push_back((
                    stream,
                    3,
                    1,
                    "\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:278)"
                        .to_owned(),
                ));
                self.pending.push_back((
                    stream,
                    3,
                    1,
                    format!("\t... {} common frames omitted", 20 + self.rng.below(40)),
                ));
            }
        } else if warn {
            let _ = write!(
                t,
                "HikariPool-1 - Connection is not available, request timed out after {}ms (total={}, active={}, idle=0, waiting={})",
                30_000 + self.rng.below(5),
                20,
                20,
                self.rng.below(30)
            );
        } else {
            match self.rng.below(4) {
                0 => {
                    t.push_str("Created order ");
                    self.new_uuid(t);
                    let _ = write!(
                        t,
                        " for customer c-{cust} total={}.{:02} EUR",
                        self.rng.below(900),
                        self.rng.below(100)
                    );
                }
                1 => {
                    let _ = write!(t, "Completed 200 OK in {}ms", 2 + self.rng.below(300));
                }
                2 => {
                    let _ = write!(
                        t,
                        "Fetched cart for customer c-{cust} with {} items",
                        self.rng.below(12)
                    );
                }
                _ => {
                    let _ = write!(
                        t,
                        "Published event OrderStatusChanged to orders-events-{} offset {}",
                        self.rng.below(6),
                        1_000_000 + (self.now_ns / 1_000_000) % 10_000_000
                    );
                }
            }
        }
    }

    fn python(&mut self, out: &mut Line) {
        let i = self.rng.below(self.python_idx.len() as u64) as usize;
        out.stream = self.python_idx[i];
        out.pid = 4000 + self.rng.below(16) as u32;
        let ms = self.millis();
        let task = PY_TASKS[self.rng.below(PY_TASKS.len() as u64) as usize];
        let error = self.rng.chance(0.02);
        let t = &mut out.text;
        t.push_str(&self.ts_iso_space);
        let _ = write!(t, ",{ms:03} ");
        if error {
            let (ex, msg, code) = PY_ERRORS[self.rng.below(PY_ERRORS.len() as u64) as usize];
            let _ = write!(t, "ERROR [celery.app.trace] Task worker.tasks.{task}[");
            self.new_uuid(t);
            let _ = write!(t, "] raised unexpected: {ex}({msg:?})");
            out.severity = 3;
            let (s, p) = (out.stream, out.pid);
            for l in [
                "Traceback (most recent call last):".to_owned(),
                "  File \"/srv/worker/.venv/lib/python3.11/site-packages/celery/app/trace.py\", line 477, in trace_task".to_owned(),
                "    R = retval = fun(*args, **kwargs)".to_owned(),
                "  File \"/srv/worker/.venv/lib/python3.11/site-packages/celery/app/trace.py\", line 760, in __protected_call__".to_owned(),
                "    return self.run(*args, **kwargs)".to_owned(),
                format!("  File \"/srv/worker/worker/tasks.py\", line {}, in {task}", 40 + self.rng.below(200)),
                format!("    {code}"),
                format!("{ex}: {msg}"),
            ] {
                self.pending.push_back((s, 3, p, l));
            }
        } else {
            out.severity = 6;
            let _ = write!(t, "INFO [celery.app.trace] Task worker.tasks.{task}[");
            self.new_uuid(t);
            let _ = write!(t, "] succeeded in {:.3}s: None", self.rng.unit() * 4.0);
        }
    }

    fn syslog(&mut self, out: &mut Line) {
        let h = self.rng.below(HOSTS.len() as u64) as usize;
        let which = self.rng.weighted(&self.vocab.syslog_weights);
        out.stream = self.syslog_idx[h][which];
        let host = HOSTS[h];
        let (app, _) = SYSLOG_APPS[which];
        out.pid = match which {
            2 => 0,
            3 => 1,
            _ => 1000 + self.rng.below(60_000) as u32,
        };
        let t = &mut out.text;
        t.push_str(&self.ts_bsd);
        let _ = write!(t, " {host} {app}");
        if out.pid != 0 {
            let _ = write!(t, "[{}]", out.pid);
        }
        t.push_str(": ");
        out.msg_start = t.len();
        out.severity = 6;
        match which {
            0 => {
                let port = 1024 + self.rng.below(64_000);
                match self.rng.below(10) {
                    0..=2 => {
                        let user = USERS[self.vocab.users.sample(&mut self.rng)];
                        let _ = write!(t, "Accepted publickey for {user} from ");
                        self.client_ip(t);
                        let fp = mix(user.len() as u64 * 7 + h as u64);
                        let _ = write!(
                            t,
                            " port {port} ssh2: ED25519 SHA256:{fp:016x}{:016x}",
                            mix(fp)
                        );
                    }
                    3..=5 => {
                        out.severity = 5;
                        let user = BAD_USERS[self.rng.below(BAD_USERS.len() as u64) as usize];
                        let _ = write!(t, "Failed password for invalid user {user} from ");
                        self.scanner_ip(t);
                        let _ = write!(t, " port {port} ssh2");
                    }
                    6 => {
                        let user = BAD_USERS[self.rng.below(BAD_USERS.len() as u64) as usize];
                        let _ = write!(t, "Invalid user {user} from ");
                        self.scanner_ip(t);
                        let _ = write!(t, " port {port}");
                    }
                    7 => {
                        let user = USERS[self.vocab.users.sample(&mut self.rng)];
                        let _ = write!(
                            t,
                            "pam_unix(sshd:session): session opened for user {user}(uid={}) by (uid=0)",
                            1000 + user.len()
                        );
                    }
                    8 => {
                        let user = USERS[self.vocab.users.sample(&mut self.rng)];
                        let _ = write!(t, "pam_unix(sshd:session): session closed for user {user}");
                    }
                    _ => {
                        t.push_str("Received disconnect from ");
                        self.scanner_ip(t);
                        let _ = write!(t, " port {port}:11: Bye Bye [preauth]");
                    }
                }
            }
            1 => match self.rng.below(3) {
                0 => {
                    let _ = write!(
                        t,
                        "(root) CMD ({})",
                        CRON_CMDS[self.rng.below(CRON_CMDS.len() as u64) as usize]
                    );
                }
                1 => t.push_str(
                    "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
                ),
                _ => t.push_str("pam_unix(cron:session): session closed for user root"),
            },
            2 => {
                self.kernel_uptime_us += 1 + self.rng.below(5_000_000);
                let up = self.kernel_uptime_us;
                let _ = write!(t, "[{:>5}.{:06}] ", up / 1_000_000, up % 1_000_000);
                match self.rng.below(20) {
                    0..=15 => {
                        out.severity = 4;
                        t.push_str("[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:fe:ff:ff:ff:ff:ff:08:00 SRC=");
                        self.scanner_ip(t);
                        let _ = write!(
                            t,
                            " DST=10.0.{}.{} LEN=44 TOS=0x00 PREC=0x00 TTL={} ID={} PROTO=TCP SPT={} DPT={} WINDOW=1024 RES=0x00 SYN URGP=0",
                            h / 4,
                            10 + h,
                            230 + self.rng.below(25),
                            self.rng.below(65_536),
                            1024 + self.rng.below(64_000),
                            [22, 23, 3389, 445, 8080, 5900, 6379, 9200][self.rng.below(8) as usize]
                        );
                    }
                    16 => t.push_str("TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters."),
                    17 => t.push_str("EXT4-fs (vda1): re-mounted. Opts: errors=remount-ro. Quota mode: none."),
                    18 => {
                        let _ = write!(
                            t,
                            "nvme0n1: I/O error, dev nvme0n1, sector {} op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2",
                            self.rng.below(1_000_000_000)
                        );
                        out.severity = 3;
                    }
                    _ => {
                        out.severity = 3;
                        let _ = write!(
                            t,
                            "Out of memory: Killed process {} (java) total-vm:{}kB, anon-rss:{}kB, file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:{}kB oom_score_adj:0",
                            1000 + self.rng.below(60_000),
                            8_000_000 + self.rng.below(2_000_000),
                            6_000_000 + self.rng.below(1_000_000),
                            12_000 + self.rng.below(4_000)
                        );
                    }
                }
            }
            _ => {
                let unit = UNITS[self.vocab.units.sample(&mut self.rng)];
                match self.rng.below(6) {
                    0 => {
                        let _ = write!(
                            t,
                            "Starting {unit} - {}...",
                            unit.trim_end_matches(".service").replace('-', " ")
                        );
                    }
                    1 => {
                        let _ = write!(
                            t,
                            "Started {unit} - {}.",
                            unit.trim_end_matches(".service").replace('-', " ")
                        );
                    }
                    2 => {
                        let _ = write!(t, "{unit}: Deactivated successfully.");
                    }
                    3 => {
                        let _ = write!(
                            t,
                            "{unit}: Consumed {}.{:03}s CPU time.",
                            self.rng.below(10),
                            self.rng.below(1000)
                        );
                    }
                    4 => {
                        let _ = write!(
                            t,
                            "Finished {unit} - {}.",
                            unit.trim_end_matches(".service").replace('-', " ")
                        );
                    }
                    _ => {
                        let _ = write!(
                            t,
                            "session-{}.scope: Deactivated successfully.",
                            10_000 + self.rng.below(5_000)
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(seed: u64, n: usize) -> Vec<Line> {
        let mut g = Generator::new(Config {
            seed,
            ..Config::default()
        });
        (0..n)
            .map(|_| {
                let mut l = Line::default();
                g.next_line(&mut l);
                l
            })
            .collect()
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = lines(5, 2_000);
        let b = lines(5, 2_000);
        let c = lines(6, 2_000);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.text == y.text && x.ts_ns == y.ts_ns));
        assert!(a.iter().zip(&c).any(|(x, y)| x.text != y.text));
    }

    #[test]
    fn mix_covers_every_source_and_times_advance() {
        let g = Generator::new(Config::default());
        let ls = lines(1, 50_000);
        let mut per = std::collections::HashMap::new();
        for l in &ls {
            *per.entry(g.streams()[l.stream].source).or_insert(0usize) += 1;
            assert!(!l.text.contains('\n'));
        }
        for s in [
            Source::Syslog,
            Source::Access,
            Source::Json,
            Source::Java,
            Source::Python,
        ] {
            assert!(per.get(&s).copied().unwrap_or(0) > 1_000, "{s:?}: {per:?}");
        }
        assert!(ls.windows(2).all(|w| w[0].ts_ns < w[1].ts_ns));
        // Multi-line traces are present.
        assert!(ls
            .iter()
            .any(|l| l.text.starts_with("\tat com.shop.orders.")));
        assert!(ls
            .iter()
            .any(|l| l.text == "Traceback (most recent call last):"));
        // JSON lines parse as objects.
        let json = ls
            .iter()
            .find(|l| g.streams()[l.stream].source == Source::Json);
        assert!(json.is_some_and(
            |l| l.text.starts_with("{\"ts\":\"2026-11-22T00:00:") && l.text.ends_with('}')
        ));
        // Syslog prefix and message split.
        let sys = ls
            .iter()
            .find(|l| g.streams()[l.stream].source == Source::Syslog);
        assert!(sys.is_some_and(|l| l.text.starts_with("Nov 22 00:00:") && !l.message().is_empty()));
    }

    #[test]
    fn rare_tokens_are_rare_and_common_paths_common() {
        let mut g = Generator::new(Config::default());
        let mut l = Line::default();
        let mut rare = Vec::new();
        let mut all = String::new();
        for i in 0..20_000 {
            g.next_line(&mut l);
            if i % 1000 == 0 && !g.last_rare_token().is_empty() {
                rare.push(g.last_rare_token().to_owned());
            }
            all.push_str(&l.text);
            all.push('\n');
        }
        assert!(!rare.is_empty());
        for r in &rare {
            let n = all.matches(r.as_str()).count();
            assert!((1..=3).contains(&n), "{r} appears {n} times");
        }
        assert!(all.matches("/api/v1/products/").count() > 1_000);
    }
}
