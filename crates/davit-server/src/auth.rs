//! Who may do what: users from the configuration with argon2 password hashes, HTTP Basic,
//! optional anonymous read access, per-user roots and per-path rules.
//!
//! Authentication runs once per request, before anything else looks at the path (so a denied
//! request learns nothing about what exists). Authorization is asked for every resource a
//! request reaches: the target, each declared change, whole trees for DELETE/MOVE/COPY, and
//! each member a listing would show.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use davit_proto::headers::parse_basic_credentials;
use davit_proto::href::DavPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// What a principal may do with a resource. Ordered: `None < Read < ReadWrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Nothing; the resource is not even visible.
    None,
    /// GET, HEAD, PROPFIND, COPY as a source.
    Read,
    /// Everything.
    ReadWrite,
}

/// The `[auth]` table of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The realm in `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// What requests without credentials may do: `none` (401) or `read`.
    #[serde(default = "default_anonymous")]
    pub anonymous: Access,
    /// Failed logins allowed per client address per minute before 429.
    #[serde(default = "default_max_failures")]
    pub max_failures_per_minute: u32,
    /// The users.
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    /// Per-path rules; the longest matching path wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

fn redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("(set)")
}

fn default_realm() -> String {
    "davit".to_owned()
}
fn default_anonymous() -> Access {
    Access::None
}
fn default_max_failures() -> u32 {
    10
}

/// One `[[auth.user]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// An argon2 PHC string, as printed by `davit hash-password` (never printed back).
    #[serde(serialize_with = "redacted")]
    pub password_hash: String,
    /// Confines the user to this subtree (`{user}` is replaced by the name).
    pub root: Option<String>,
    /// A quota (RFC 4331) on the user's `root`, in bytes.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
}

/// One `[[auth.rule]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The subtree the rule applies to (`{user}` is replaced by the name).
    pub path: String,
    /// Who it applies to: user names, `*` for every authenticated user, `anonymous`.
    pub users: Vec<String>,
    /// What they may do there.
    pub access: Access,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("auth configuration: {0}")]
pub struct AuthConfigError(String);

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// An authenticated user.
    User(String),
}

/// Why authentication failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// Missing or wrong credentials: 401.
    Unauthorized,
    /// Too many failed attempts from this address: 429.
    TooManyAttempts,
}

struct User {
    hash: String,
    root: Option<DavPath>,
    quota_bytes: Option<u64>,
}

struct Rule {
    /// Path template; `{user}` expanded per request.
    path: String,
    users: Vec<String>,
    access: Access,
}

/// How long a verified password is remembered, so that Basic (credentials on every request)
/// does not cost an argon2 run per request.
const VERIFIED_TTL: Duration = Duration::from_secs(300);

/// The authentication and authorization state of a server: the users and rules of the
/// configuration (replaced whole by [`Auth::reload`]) and what requests have taught it.
pub struct Auth {
    policy: arc_swap::ArcSwap<Policy>,
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// A permit per argon2 run in progress: each takes 19 MiB and a core for tens of
    /// milliseconds, so a flood of bad credentials (400 at once took 3.7 GB and 400 threads)
    /// queues here instead.
    verifications: tokio::sync::Semaphore,
    /// argon2 verifications run so far (what the timing-equality test counts).
    argon2_runs: std::sync::atomic::AtomicU64,
    /// Counts reloads (see [`Auth::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

/// What the `[auth]` table says: who exists and who may do what.
struct Policy {
    realm: String,
    anonymous: Access,
    max_failures: u32,
    users: HashMap<String, User>,
    rules: Vec<Rule>,
    /// A hash to verify against for unknown users, made with the argon2 parameters most users'
    /// hashes have, so a wrong user name costs the same time as a wrong password.
    dummy_hash: String,
}

/// Failure records kept before the stale ones (over a minute old) are swept out.
const FAILURE_RECORDS: usize = 4096;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("realm", &self.policy.load().realm)
            .finish_non_exhaustive()
    }
}

/// Hashes a password into an argon2id PHC string (what `password_hash` holds).
pub fn hash_password(password: &str) -> Result<String, AuthConfigError> {
    hash_with(&Argon2::default(), password)
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, AuthConfigError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthConfigError(e.to_string()))
}

/// The cost of verifying against a PHC hash: its algorithm, version and parameters (the salt
/// and output length aside, which do not change the time).
fn hash_cost(hash: &str) -> Option<(argon2::Algorithm, argon2::Version, u32, u32, u32)> {
    let h = PasswordHash::new(hash).ok()?;
    let algorithm = argon2::Algorithm::try_from(h.algorithm).ok()?;
    let version = h.version.and_then(|v| argon2::Version::try_from(v).ok())?;
    let params = argon2::Params::try_from(&h).ok()?;
    Some((
        algorithm,
        version,
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
    ))
}

/// A hash of a throwaway password with the cost most of `hashes` have (argon2's defaults
/// when there are none), so that verifying an unknown user takes as long as a known one.
fn dummy_hash<'a>(hashes: impl Iterator<Item = &'a str>) -> Result<String, AuthConfigError> {
    let mut counts: Vec<(_, usize)> = Vec::new();
    for cost in hashes.filter_map(hash_cost) {
        match counts.iter_mut().find(|(c, _)| *c == cost) {
            Some((_, n)) => *n += 1,
            None => counts.push((cost, 1)),
        }
    }
    // The first of the most common, so the choice does not depend on hash-map order.
    let mut best: Option<&(_, usize)> = None;
    for c in &counts {
        if best.is_none_or(|b| c.1 > b.1) {
            best = Some(c);
        }
    }
    let argon2 = match best {
        Some(((algorithm, version, m, t, p), _)) => {
            let params = argon2::Params::new(*m, *t, *p, None)
                .map_err(|e| AuthConfigError(e.to_string()))?;
            Argon2::new(*algorithm, *version, params)
        }
        None => Argon2::default(),
    };
    hash_with(&argon2, "davit-dummy-password")
}

fn expand(template: &str, user: &str) -> String {
    template.replace("{user}", user)
}

fn parse_path(s: &str) -> Option<DavPath> {
    DavPath::parse(s).ok()
}

impl Policy {
    /// Checks the configuration (hashes parse, paths are paths).
    fn new(cfg: &AuthConfig) -> Result<Policy, AuthConfigError> {
        let mut users = HashMap::new();
        for u in &cfg.users {
            PasswordHash::new(&u.password_hash)
                .map_err(|e| AuthConfigError(format!("user {}: bad password_hash: {e}", u.name)))?;
            if u.quota_bytes.is_some() && u.root.is_none() {
                return Err(AuthConfigError(format!(
                    "user {}: quota_bytes needs a root to apply to",
                    u.name
                )));
            }
            let root = match &u.root {
                Some(r) => Some(parse_path(&expand(r, &u.name)).ok_or_else(|| {
                    AuthConfigError(format!("user {}: root {r:?} is not a path", u.name))
                })?),
                None => None,
            };
            if users
                .insert(
                    u.name.clone(),
                    User {
                        hash: u.password_hash.clone(),
                        root,
                        quota_bytes: u.quota_bytes,
                    },
                )
                .is_some()
            {
                return Err(AuthConfigError(format!("user {} is listed twice", u.name)));
            }
        }
        for r in &cfg.rules {
            if parse_path(&expand(&r.path, "x")).is_none() {
                return Err(AuthConfigError(format!(
                    "rule path {:?} is not a path",
                    r.path
                )));
            }
        }
        Ok(Policy {
            dummy_hash: dummy_hash(cfg.users.iter().map(|u| u.password_hash.as_str()))?,
            realm: cfg.realm.clone(),
            anonymous: cfg.anonymous,
            max_failures: cfg.max_failures_per_minute,
            users,
            rules: cfg
                .rules
                .iter()
                .map(|r| Rule {
                    path: r.path.clone(),
                    users: r.users.clone(),
                    access: r.access,
                })
                .collect(),
        })
    }
}

impl Auth {
    /// Checks the configuration (hashes parse, paths are paths) and builds the state.
    pub fn new(cfg: &AuthConfig) -> Result<Auth, AuthConfigError> {
        Ok(Auth {
            policy: arc_swap::ArcSwap::from_pointee(Policy::new(cfg)?),
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verifications: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            ),
            argon2_runs: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Replaces the users and rules with those of `cfg` (SIGHUP), or keeps the old ones and
    /// says why when `cfg` is invalid. Passwords remembered as verified are forgotten, so a
    /// changed or removed password stops working at once. Users' `quota_bytes` are read at
    /// start-up only: the answer says whether they differ.
    pub fn reload(&self, cfg: &AuthConfig) -> Result<Reloaded, AuthConfigError> {
        let policy = Policy::new(cfg)?;
        let mut old = self.quota_limits();
        let mut new = policy.quota_limits();
        old.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        new.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let reloaded = Reloaded {
            users: policy.users.len(),
            rules: policy.rules.len(),
            quotas_changed: old != new,
        };
        self.policy.store(Arc::new(policy));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut cache) = self.verified.lock() {
            cache.clear();
        }
        Ok(reloaded)
    }

    /// Changes with every reload: what is cached per user is cached per generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Client addresses refused for failed logins right now (a gauge of the metrics).
    pub fn rate_limited_addresses(&self) -> usize {
        let max = self.policy.load().max_failures;
        self.failures.lock().map_or(0, |f| {
            f.values()
                .filter(|(n, since)| *n >= max && since.elapsed() < Duration::from_secs(60))
                .count()
        })
    }

    /// The `WWW-Authenticate` value.
    pub fn challenge(&self) -> String {
        format!(
            "Basic realm=\"{}\", charset=\"UTF-8\"",
            self.policy.load().realm.replace('"', "")
        )
    }

    /// Authenticates from an `Authorization` header value (if any). Costs an argon2
    /// verification on the first use of a password, for unknown users too.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Principal, AuthFailure> {
        let Some(value) = authorization else {
            return Ok(Principal::Anonymous);
        };
        if let Some(ip) = peer {
            if self.too_many_failures(ip) {
                return Err(AuthFailure::TooManyAttempts);
            }
        }
        let ok = match parse_basic_credentials(value) {
            Some((user, password)) => self.verify(&user, &password, peer).await?.then_some(user),
            None => None,
        };
        match ok {
            Some(user) => Ok(Principal::User(user)),
            None => {
                if let Some(ip) = peer {
                    self.record_failure(ip);
                }
                Err(AuthFailure::Unauthorized)
            }
        }
    }

    /// Whether `password` is `user`'s: from the cache of recent successes, or by argon2 once
    /// a verification permit is free. Waiting for one may have changed the answer, so the
    /// cache and the address's failures are looked at again after the wait.
    async fn verify(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<bool, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if self.recently_verified(user, &digest) {
            return Ok(true);
        }
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(|_| AuthFailure::Unauthorized)?;
        if peer.is_some_and(|ip| self.too_many_failures(ip)) {
            return Err(AuthFailure::TooManyAttempts);
        }
        if self.recently_verified(user, &digest) {
            return Ok(true);
        }
        let (hash, known_user) = {
            let policy = self.policy.load();
            match policy.users.get(user) {
                Some(u) => (u.hash.clone(), true),
                None => (policy.dummy_hash.clone(), false),
            }
        };
        self.argon2_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async workers.
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = matched && known_user;
        if ok {
            if let Ok(mut cache) = self.verified.lock() {
                cache.insert(user.to_owned(), (digest, Instant::now()));
            }
        }
        Ok(ok)
    }

    fn recently_verified(&self, user: &str, digest: &[u8; 32]) -> bool {
        self.verified.lock().is_ok_and(|cache| {
            cache.get(user).is_some_and(|(known, at)| {
                at.elapsed() < VERIFIED_TTL && bool::from(known.ct_eq(digest))
            })
        })
    }

    fn too_many_failures(&self, ip: IpAddr) -> bool {
        let Ok(mut f) = self.failures.lock() else {
            return false;
        };
        match f.get(&ip) {
            Some((_, since)) if since.elapsed() >= Duration::from_secs(60) => {
                f.remove(&ip);
                false
            }
            Some((n, _)) => *n >= self.policy.load().max_failures,
            None => false,
        }
    }

    fn record_failure(&self, ip: IpAddr) {
        if let Ok(mut f) = self.failures.lock() {
            // Addresses that never come back would otherwise stay for good.
            if f.len() >= FAILURE_RECORDS {
                f.retain(|_, (_, since)| since.elapsed() < Duration::from_secs(60));
            }
            let e = f.entry(ip).or_insert((0, Instant::now()));
            if e.1.elapsed() >= Duration::from_secs(60) {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    fn applies(rule: &Rule, who: &Principal) -> bool {
        rule.users.iter().any(|u| match who {
            Principal::Anonymous => u == "anonymous",
            Principal::User(name) => u == "*" || u == name,
        })
    }

    fn rule_path(rule: &Rule, who: &Principal) -> Option<DavPath> {
        let name = match who {
            Principal::User(n) => n.as_str(),
            Principal::Anonymous => "anonymous",
        };
        parse_path(&expand(&rule.path, name))
    }

    /// The quotas users' `quota_bytes` put on their roots.
    pub fn quota_limits(&self) -> Vec<(DavPath, u64)> {
        self.policy.load().quota_limits()
    }

    /// Whether `name` is a configured user.
    pub fn has_user(&self, name: &str) -> bool {
        self.policy.load().users.contains_key(name)
    }

    /// What `who` may do with the resource at `path`.
    pub fn access(&self, who: &Principal, path: &DavPath) -> Access {
        self.policy.load().access(who, path)
    }

    /// The least `who` may do anywhere in the tree at `path` (for operations on whole trees).
    pub fn tree_access(&self, who: &Principal, path: &DavPath) -> Access {
        self.policy.load().tree_access(who, path)
    }
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Users now configured.
    pub users: usize,
    /// Rules now configured.
    pub rules: usize,
    /// Users' `quota_bytes` differ from those in force (which stay until a restart).
    pub quotas_changed: bool,
}

impl Policy {
    /// The quotas users' `quota_bytes` put on their roots.
    fn quota_limits(&self) -> Vec<(DavPath, u64)> {
        self.users
            .values()
            .filter_map(|u| Some((u.root.clone()?, u.quota_bytes?)))
            .collect()
    }

    fn user_root(&self, who: &Principal) -> Option<&DavPath> {
        match who {
            Principal::User(n) => self.users.get(n).and_then(|u| u.root.as_ref()),
            Principal::Anonymous => None,
        }
    }

    /// What `who` may do with the resource at `path`.
    fn access(&self, who: &Principal, path: &DavPath) -> Access {
        if let Some(root) = self.user_root(who) {
            if !path.starts_with(root) {
                return Access::None;
            }
        }
        let mut best: Option<(usize, Access)> = None;
        for rule in self.rules.iter().filter(|r| Auth::applies(r, who)) {
            if let Some(rp) = Auth::rule_path(rule, who) {
                if path.starts_with(&rp) {
                    let len = rp.as_str().len();
                    if best.is_none_or(|(l, _)| len >= l) {
                        best = Some((len, rule.access));
                    }
                }
            }
        }
        match best {
            Some((_, a)) => a,
            None => match who {
                Principal::User(_) => Access::ReadWrite,
                Principal::Anonymous => self.anonymous,
            },
        }
    }

    /// The least `who` may do anywhere in the tree at `path` (for operations on whole trees).
    fn tree_access(&self, who: &Principal, path: &DavPath) -> Access {
        let mut least = self.access(who, path);
        if let Some(root) = self.user_root(who) {
            if root != path && root.starts_with(path) {
                return Access::None;
            }
        }
        for rule in self.rules.iter().filter(|r| Auth::applies(r, who)) {
            if let Some(rp) = Auth::rule_path(rule, who) {
                if rp != *path && rp.starts_with(path) {
                    least = least.min(self.access(who, &rp));
                }
            }
        }
        least
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn p(s: &str) -> DavPath {
        DavPath::parse(s).unwrap()
    }

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    fn config() -> AuthConfig {
        AuthConfig {
            realm: "r".into(),
            anonymous: Access::Read,
            max_failures_per_minute: 4,
            users: vec![
                UserConfig {
                    name: "alice".into(),
                    password_hash: hash_password("wonder").unwrap(),
                    root: None,
                    quota_bytes: None,
                },
                UserConfig {
                    name: "bob".into(),
                    password_hash: hash_password("builder").unwrap(),
                    root: Some("/home/{user}".into()),
                    quota_bytes: None,
                },
            ],
            rules: vec![
                RuleConfig {
                    path: "/ro".into(),
                    users: vec!["*".into()],
                    access: Access::Read,
                },
                RuleConfig {
                    path: "/ro/alice".into(),
                    users: vec!["alice".into()],
                    access: Access::ReadWrite,
                },
                RuleConfig {
                    path: "/secret".into(),
                    users: vec!["anonymous".into(), "*".into()],
                    access: Access::None,
                },
            ],
        }
    }

    #[tokio::test]
    async fn authenticates_and_rate_limits() {
        let auth = Auth::new(&config()).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            auth.authenticate(None, Some(ip)).await,
            Ok(Principal::Anonymous)
        );
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "wonder")), Some(ip))
                .await,
            Ok(Principal::User("alice".into()))
        );
        // Cached the second time, same answer.
        assert!(auth
            .authenticate(Some(&basic("alice", "wonder")), Some(ip))
            .await
            .is_ok());
        for bad in [
            basic("alice", "nope"),
            basic("mallory", "x"),
            "Basic !!".into(),
            "Bearer x".into(),
        ] {
            assert_eq!(
                auth.authenticate(Some(&bad), Some(ip)).await,
                Err(AuthFailure::Unauthorized)
            );
        }
        // Four failures within the minute: this address is now refused, even with good
        // credentials; another address is not.
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "wonder")), Some(ip))
                .await,
            Err(AuthFailure::TooManyAttempts)
        );
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(auth
            .authenticate(Some(&basic("alice", "wonder")), Some(other))
            .await
            .is_ok());
    }

    /// A wrong user name must cost what a wrong password costs: one argon2 verification, with
    /// the parameters the users' hashes have (timing it would be a flaky test of the same).
    #[tokio::test]
    async fn unknown_users_cost_one_verification_with_the_users_parameters() {
        let cheap = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(4096, 2, 1, None).unwrap(),
        );
        let mut cfg = config();
        for u in &mut cfg.users {
            u.password_hash = hash_with(&cheap, "pw").unwrap();
        }
        cfg.users.push(UserConfig {
            name: "carol".into(),
            password_hash: hash_password("pw").unwrap(),
            root: None,
            quota_bytes: None,
        });
        let auth = Auth::new(&cfg).unwrap();
        let dummy = auth.policy.load().dummy_hash.clone();
        assert_eq!(hash_cost(&dummy), hash_cost(&cfg.users[0].password_hash));
        assert_eq!(
            hash_cost(&dummy).map(|c| (c.2, c.3, c.4)),
            Some((4096, 2, 1))
        );
        let runs = || auth.argon2_runs.load(std::sync::atomic::Ordering::Relaxed);
        for (user, pw) in [("alice", "nope"), ("ghost", "nope"), ("ghost2", "pw")] {
            let before = runs();
            assert_eq!(
                auth.authenticate(Some(&basic(user, pw)), None).await,
                Err(AuthFailure::Unauthorized),
                "{user}"
            );
            assert_eq!(runs(), before + 1, "{user}");
        }
        // With no users the dummy has argon2's defaults, like `davit hash-password` makes.
        let mut empty = config();
        empty.users.clear();
        empty.rules.clear();
        let none = Auth::new(&empty).unwrap();
        assert_eq!(
            hash_cost(&none.policy.load().dummy_hash),
            hash_cost(&hash_password("x").unwrap())
        );
    }

    #[test]
    fn rules_roots_and_trees() {
        let auth = Auth::new(&config()).unwrap();
        let alice = Principal::User("alice".into());
        let bob = Principal::User("bob".into());
        let anon = Principal::Anonymous;
        assert_eq!(auth.access(&alice, &p("/x")), Access::ReadWrite);
        assert_eq!(auth.access(&alice, &p("/ro/f")), Access::Read);
        assert_eq!(auth.access(&alice, &p("/ro/alice/f")), Access::ReadWrite);
        assert_eq!(auth.access(&alice, &p("/secret/f")), Access::None);
        assert_eq!(auth.access(&anon, &p("/x")), Access::Read);
        assert_eq!(auth.access(&anon, &p("/secret")), Access::None);
        // bob lives in /home/bob.
        assert_eq!(auth.access(&bob, &p("/home/bob/f")), Access::ReadWrite);
        assert_eq!(auth.access(&bob, &p("/x")), Access::None);
        assert_eq!(auth.tree_access(&bob, &p("/home")), Access::None);
        // A tree holding a stricter subtree is only as writable as that subtree.
        assert_eq!(auth.tree_access(&alice, &p("/")), Access::None);
        assert_eq!(auth.tree_access(&alice, &p("/ro")), Access::Read);
        assert_eq!(auth.tree_access(&alice, &p("/x")), Access::ReadWrite);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let mut c = config();
        c.users[0].password_hash = "plain".into();
        assert!(Auth::new(&c).is_err());
        let mut c = config();
        c.rules[0].path = "relative".into();
        assert!(Auth::new(&c).is_err());
    }
}
