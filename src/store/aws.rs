//! AWS Secrets Manager (`aws-sm:`) and Systems Manager Parameter Store (`aws-ssm:`) as
//! stores (SPEC §9), through the official SDK: its credential chain (environment, web
//! identity, profiles, container and instance metadata) and its endpoint rules
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL_SSM`).
//!
//! Both stores can be read back, so the value's token id is the evidence of a write. The
//! SDK's own retries are off: every attempt's answer must reach [`Attempts`] (an attempt
//! without a clear answer keeps the write *unknown*), so the retries of SPEC §5 are here.
//! Secrets Manager writes carry a `ClientRequestToken` fixed per run and target, so a
//! repeat is the same version, never a second one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_secretsmanager as sm;
use aws_sdk_ssm as ssm;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::{Attempts, Holding, NewValue, Store, WriteOutcome};
use crate::http::Policy;
use crate::report::Report;
use crate::seqera::token_id_of;
use crate::target::{Place, Target};
use crate::text::printable;

/// The KMS key of a new parameter (AWS's managed key for Parameter Store).
pub const DEFAULT_SSM_KEY: &str = "alias/aws/ssm";

/// How much of a server's message a log line quotes.
const MESSAGE_MAX: usize = 300;

/// The IAM actions each store needs, for preflight messages.
const SM_ACTIONS: &str = "secretsmanager:GetSecretValue, secretsmanager:PutSecretValue and secretsmanager:CreateSecret (plus kms:Encrypt / kms:Decrypt / kms:GenerateDataKey on a customer-managed key)";
const SSM_ACTIONS: &str = "ssm:GetParameter, ssm:PutParameter and ssm:DescribeParameters (plus kms:Encrypt / kms:Decrypt on a customer-managed key)";

/// What reading a target gives: what it holds, and what its write needs.
type Read = Result<(Holding, Option<Prepared>), String>;

/// What preflight learnt about a target, for its write. No `Debug`: the JSON object holds the
/// secret's values (the token the target holds, other credentials), so none can be printed.
#[derive(Clone)]
enum Prepared {
    /// Secrets Manager: whether the secret exists, and with `=KEY` its JSON object.
    Secret {
        exists: bool,
        object: Option<Map<String, Value>>,
    },
    /// Parameter Store: the KMS key to write with.
    Parameter { key_id: String },
}

/// Both AWS stores: one SDK configuration, one client per region and service.
pub struct AwsStore {
    out: Report,
    policy: Policy,
    config: OnceCell<Result<SdkConfig, String>>,
    sm: Mutex<HashMap<String, sm::Client>>,
    ssm: Mutex<HashMap<String, ssm::Client>>,
    prepared: Mutex<HashMap<String, Prepared>>,
    /// Waiting between retries, in all (SPEC §5: capped at 5 minutes per run).
    waited: Mutex<Duration>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The credential chain, every credential it yields masked and scrubbed before use
/// (session keys from web identity or instance metadata are obtained at run time).
struct Masking {
    inner: SharedCredentialsProvider,
    out: Report,
}

impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masking")
    }
}

impl ProvideCredentials for Masking {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let c = self.inner.provide_credentials().await?;
            self.out
                .mask(&SecretString::from(c.secret_access_key().to_string()));
            if let Some(t) = c.session_token() {
                self.out.mask(&SecretString::from(t.to_string()));
            }
            Ok(c)
        })
    }
}

/// The HTTPS client of the SDK: rustls with ring (as the rest of the tool), the proxy of
/// `HTTPS_PROXY` / `ALL_PROXY` for remote hosts, never for loopback ones (SPEC §8).
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
    };
    let proxy = var(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]).and_then(|p| {
        let mut no = var(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        no.push_str(",localhost,127.0.0.0/8,::1");
        ProxyConfig::https(p).ok().map(|c| c.no_proxy(no))
    });
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = aws_smithy_http_client::Connector::builder()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(proxy.clone());
        b.build()
    })
}

/// Why one SDK call failed, classified for the evidence rules (SPEC §5 step 6).
struct Failure {
    /// What to say (scrubbed, one line).
    why: String,
    /// The request may have been performed (no clear answer).
    maybe_performed: bool,
    /// Worth another attempt (throttling, a server error, a cut or timeout).
    transient: bool,
    /// The service's error code, when it answered one.
    code: Option<String>,
    /// The HTTP status, when there was an answer.
    status: Option<u16>,
}

impl Failure {
    fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    fn denied(&self) -> bool {
        matches!(self.status, Some(401 | 403))
            || self.code.as_deref().is_some_and(|c| {
                c.contains("AccessDenied")
                    || c == "UnrecognizedClientException"
                    || c.contains("Signature")
            })
    }
}

/// Whether the connection was never made (nothing sent): a clear refusal.
fn never_connected(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(h) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        next = err.source();
    }
    false
}

impl AwsStore {
    /// The store; `out` masks the credentials the chain obtains; `policy`: the retries
    /// and the timeout of each attempt (SPEC §5).
    pub fn new(out: Report, policy: Policy) -> Self {
        Self {
            out,
            policy,
            config: OnceCell::new(),
            sm: Mutex::default(),
            ssm: Mutex::default(),
            prepared: Mutex::default(),
            waited: Mutex::default(),
        }
    }

    /// An error and its causes, one line, scrubbed (Display only: no Debug dumps).
    fn chain(&self, e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut next = Some(e);
        while let Some(err) = next {
            let text = err.to_string();
            if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            next = err.source();
        }
        self.scrub(&parts.join(": "))
    }

    fn scrub(&self, text: &str) -> String {
        printable(self.out.scrubber(), text, MESSAGE_MAX)
    }

    /// The shared configuration: loaded once, its credentials masked and checked.
    async fn config(&self) -> Result<&SdkConfig, String> {
        let loaded = self
            .config
            .get_or_init(|| async {
                let base = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http_client())
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(self.policy.timeout)
                            .operation_attempt_timeout(self.policy.timeout)
                            .operation_timeout(self.policy.timeout)
                            .build(),
                    )
                    .load()
                    .await;
                let Some(chain) = base.credentials_provider() else {
                    return Err("no AWS credentials provider could be set up".to_string());
                };
                let masking = SharedCredentialsProvider::new(Masking {
                    inner: chain,
                    out: self.out.clone(),
                });
                masking.provide_credentials().await.map_err(|e| {
                    format!(
                        "no AWS credentials: {} (set them as aws-actions/configure-aws-credentials does: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a web-identity role, a profile, or instance / container metadata)",
                        self.chain(&e)
                    )
                })?;
                Ok(base.into_builder().credentials_provider(masking).build())
            })
            .await;
        loaded.as_ref().map_err(Clone::clone)
    }

    async fn sm(&self, region: &str) -> Result<sm::Client, String> {
        let config = self.config().await?;
        Ok(lock(&self.sm)
            .entry(region.to_string())
            .or_insert_with(|| {
                sm::Client::from_conf(
                    sm::config::Builder::from(config)
                        .region(Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone())
    }

    async fn ssm(&self, region: &str) -> Result<ssm::Client, String> {
        let config = self.config().await?;
        Ok(lock(&self.ssm)
            .entry(region.to_string())
            .or_insert_with(|| {
                ssm::Client::from_conf(
                    ssm::config::Builder::from(config)
                        .region(Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone())
    }

    fn classify<E>(&self, e: &SdkError<E, HttpResponse>) -> Failure
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        match e {
            SdkError::ServiceError(s) => {
                let status = s.raw().status().as_u16();
                let err = s.err();
                let code = err.code().map(str::to_string);
                let throttled = matches!(
                    code.as_deref(),
                    Some(
                        "ThrottlingException"
                            | "TooManyRequestsException"
                            | "Throttling"
                            | "ThrottledException"
                    )
                ) || status == 429;
                let server = (500..600).contains(&status) && status != 501;
                let what = match (code.as_deref(), err.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    (None, Some(m)) => m.to_string(),
                    // An answer the SDK could not read as its protocol's error (a
                    // gateway's page, an XML error): quote it, scrubbed and cut.
                    (None, None) => s
                        .raw()
                        .body()
                        .bytes()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .filter(|b| !b.trim().is_empty())
                        .unwrap_or_else(|| "no message".to_string()),
                };
                Failure {
                    why: format!("HTTP {status}, {}", self.scrub(&what)),
                    maybe_performed: server,
                    transient: server || throttled,
                    code,
                    status: Some(status),
                }
            }
            SdkError::ConstructionFailure(_) => Failure {
                why: format!("the request could not be built: {}", self.chain(e)),
                maybe_performed: false,
                transient: false,
                code: None,
                status: None,
            },
            SdkError::DispatchFailure(d) if never_connected(e) || d.is_user() => Failure {
                why: format!("cannot be reached: {}", self.chain(e)),
                maybe_performed: false,
                transient: !d.is_user(),
                code: None,
                status: None,
            },
            SdkError::ResponseError(r) => {
                let status = r.raw().status().as_u16();
                Failure {
                    why: format!(
                        "HTTP {status}, an answer that could not be read: {}",
                        self.chain(e)
                    ),
                    maybe_performed: true,
                    transient: (500..600).contains(&status),
                    code: None,
                    status: Some(status),
                }
            }
            // A timeout or a cut connection after sending: no clear answer.
            _ => Failure {
                why: format!("no clear answer: {}", self.chain(e)),
                maybe_performed: true,
                transient: true,
                code: None,
                status: None,
            },
        }
    }

    /// Backoff of SPEC §5 before retry `attempt` (0-based), or None to give up.
    fn backoff(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.policy.max_retries {
            return None;
        }
        let ceiling = self.policy.backoff_base.as_secs_f64() * 2f64.powi(attempt as i32);
        let wait = Duration::from_secs_f64(rand::random::<f64>() * ceiling);
        let mut waited = lock(&self.waited);
        let total = waited
            .checked_add(wait)
            .filter(|t| *t <= self.policy.wait_cap)?;
        *waited = total;
        Some(wait)
    }

    /// Runs `call` with the retries of SPEC §5, folding every attempt's answer.
    async fn retried<T, F, Fut, E>(&self, mut call: F) -> Result<T, (Failure, Attempts)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempts = Attempts::default();
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let f = self.classify(&e);
                    if f.transient {
                        if let Some(wait) = self.backoff(attempt) {
                            attempts.failed(&f.why, f.maybe_performed);
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                            continue;
                        }
                    }
                    return Err((f, attempts));
                }
            }
        }
    }

    /// What the secret holds (`None`: no such secret), with its value for `=KEY`.
    async fn read_secret(
        &self,
        client: &sm::Client,
        name: &str,
    ) -> Result<Option<SecretString>, Failure> {
        let r = self
            .retried(|| client.get_secret_value().secret_id(name).send())
            .await;
        match r {
            Ok(out) => Ok(Some(SecretString::from(
                out.secret_string().unwrap_or_default().to_string(),
            ))),
            Err((f, _)) if f.is("ResourceNotFoundException") => Ok(None),
            Err((f, _)) => Err(f),
        }
    }

    /// The parameter's type and KMS key (`None`: no such parameter).
    async fn describe_parameter(
        &self,
        client: &ssm::Client,
        name: &str,
    ) -> Result<Option<(String, Option<String>)>, Failure> {
        let filter = ssm::types::ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(name)
            .build()
            .map_err(|e| Failure {
                why: format!("the request could not be built: {e}"),
                maybe_performed: false,
                transient: false,
                code: None,
                status: None,
            })?;
        let out = self
            .retried(|| {
                client
                    .describe_parameters()
                    .parameter_filters(filter.clone())
                    .send()
            })
            .await
            .map_err(|(f, _)| f)?;
        Ok(out
            .parameters()
            .iter()
            .find(|p| p.name() == Some(name))
            .map(|p| {
                (
                    p.r#type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    p.key_id().map(str::to_string),
                )
            }))
    }

    async fn read_parameter(
        &self,
        client: &ssm::Client,
        name: &str,
    ) -> Result<Option<SecretString>, Failure> {
        let r = self
            .retried(|| {
                client
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
            })
            .await;
        match r {
            Ok(out) => Ok(Some(SecretString::from(
                out.parameter()
                    .and_then(|p| p.value())
                    .unwrap_or_default()
                    .to_string(),
            ))),
            Err((f, _)) if f.is("ParameterNotFound") => Ok(None),
            Err((f, _)) => Err(f),
        }
    }

    /// What a target holds now: the token id of its value (of `=KEY` in a JSON object).
    async fn holding(&self, t: &Target) -> Read {
        match &t.place {
            Place::AwsSm { region, name, key } => {
                let client = self.sm(&region.to_string()).await?;
                let value = self
                    .read_secret(&client, name)
                    .await
                    .map_err(|f| self.refusal(t, &f, "GetSecretValue", SM_ACTIONS))?;
                let Some(value) = value else {
                    return Ok((
                        Holding::Missing,
                        Some(Prepared::Secret {
                            exists: false,
                            object: key.as_ref().map(|_| Map::new()),
                        }),
                    ));
                };
                match key {
                    None => Ok((
                        token_holding(&value),
                        Some(Prepared::Secret {
                            exists: true,
                            object: None,
                        }),
                    )),
                    Some(k) => {
                        let object = match serde_json::from_str::<Value>(value.expose_secret()) {
                            Ok(Value::Object(o)) => o,
                            _ => {
                                return Err(format!(
                                    "{}: the secret's value is not a JSON object, so key `{k}` cannot be set in it (nothing was changed; write it without `={k}`, or make the value a JSON object)",
                                    t.label
                                ))
                            }
                        };
                        let held = match object.get(k) {
                            None => Holding::Missing,
                            Some(Value::String(s)) => token_holding(&SecretString::from(s.clone())),
                            Some(_) => Holding::Other,
                        };
                        Ok((
                            held,
                            Some(Prepared::Secret {
                                exists: true,
                                object: Some(object),
                            }),
                        ))
                    }
                }
            }
            Place::AwsSsm { region, name } => {
                let client = self.ssm(&region.to_string()).await?;
                // Type and key, and the value, at once: one round trip, in preflight and in
                // every read-back. The value of a parameter that turns out not to be a
                // SecureString is read but never used.
                let (described, value) = futures_util::join!(
                    self.describe_parameter(&client, name),
                    self.read_parameter(&client, name)
                );
                let described = described
                    .map_err(|f| self.refusal(t, &f, "DescribeParameters", SSM_ACTIONS))?;
                let Some((kind, key_id)) = described else {
                    return Ok((
                        Holding::Missing,
                        Some(Prepared::Parameter {
                            key_id: DEFAULT_SSM_KEY.to_string(),
                        }),
                    ));
                };
                if kind != "SecureString" {
                    return Err(format!(
                        "{}: the parameter is a {} and a token is never stored in clear; nothing was changed (delete it or make it a SecureString)",
                        t.label,
                        self.scrub(&kind)
                    ));
                }
                let value = value.map_err(|f| self.refusal(t, &f, "GetParameter", SSM_ACTIONS))?;
                let held = value.as_ref().map_or(Holding::Missing, token_holding);
                Ok((
                    held,
                    Some(Prepared::Parameter {
                        key_id: key_id.unwrap_or_else(|| DEFAULT_SSM_KEY.to_string()),
                    }),
                ))
            }
            _ => Err(format!("{} is not an AWS target", t.label)),
        }
    }

    fn refusal(&self, t: &Target, f: &Failure, action: &str, needed: &str) -> String {
        if f.denied() {
            format!(
                "{}: {action} was refused ({}); the AWS credentials need {needed} on it",
                t.label, f.why
            )
        } else {
            format!("{}: {action} failed ({})", t.label, f.why)
        }
    }

    /// The idempotency key of this run's write to `t` (32–64 characters, as AWS requires).
    fn request_token(new: &NewValue<'_>, t: &Target) -> String {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{}\n{}", new.run, t.label).as_bytes(),
        );
        let hex: String = digest
            .as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    async fn write_one(&self, t: &Target, new: &NewValue<'_>) -> WriteOutcome {
        let prepared = lock(&self.prepared).get(&t.label).cloned();
        let prepared = match prepared {
            Some(p) => p,
            None => match self.holding(t).await {
                Ok((_, Some(p))) => p,
                Ok((_, None)) => {
                    return WriteOutcome::Refused(format!("{} was not prepared", t.label))
                }
                Err(e) => return WriteOutcome::Refused(e),
            },
        };
        let (result, created) = match (&t.place, prepared) {
            (Place::AwsSm { region, name, key }, Prepared::Secret { exists, object }) => {
                let client = match self.sm(&region.to_string()).await {
                    Ok(c) => c,
                    Err(e) => return WriteOutcome::Refused(e),
                };
                let value = match (key, object) {
                    (Some(k), Some(mut o)) => {
                        o.insert(
                            k.clone(),
                            Value::String(new.value.expose_secret().to_string()),
                        );
                        zeroize::Zeroizing::new(Value::Object(o).to_string())
                    }
                    _ => zeroize::Zeroizing::new(new.value.expose_secret().to_string()),
                };
                let token = Self::request_token(new, t);
                let r = if exists {
                    self.retried(|| {
                        client
                            .put_secret_value()
                            .secret_id(name)
                            .client_request_token(&token)
                            .secret_string(value.as_str())
                            .send()
                    })
                    .await
                    .map(|_| ())
                } else {
                    self.retried(|| {
                        client
                            .create_secret()
                            .name(name)
                            .client_request_token(&token)
                            .secret_string(value.as_str())
                            .send()
                    })
                    .await
                    .map(|_| ())
                };
                (r, !exists)
            }
            (Place::AwsSsm { region, name }, Prepared::Parameter { key_id }) => {
                let client = match self.ssm(&region.to_string()).await {
                    Ok(c) => c,
                    Err(e) => return WriteOutcome::Refused(e),
                };
                let r = self
                    .retried(|| {
                        client
                            .put_parameter()
                            .name(name)
                            .value(new.value.expose_secret())
                            .r#type(ssm::types::ParameterType::SecureString)
                            .key_id(&key_id)
                            .overwrite(true)
                            .send()
                    })
                    .await
                    .map(|_| ());
                (r, false)
            }
            _ => return WriteOutcome::Refused(format!("{} is not an AWS target", t.label)),
        };
        // Read back, whatever the answer: the value's token id is the evidence.
        let (answered, attempts, why) = match result {
            Ok(()) => (true, Attempts::default(), String::new()),
            Err((f, mut attempts)) => {
                let needed = match &t.place {
                    Place::AwsSsm { .. } => SSM_ACTIONS,
                    _ => SM_ACTIONS,
                };
                let why = if f.denied() {
                    format!("{}; the AWS credentials need {needed}", f.why)
                } else {
                    f.why.clone()
                };
                attempts.failed(&why, f.maybe_performed);
                (false, attempts, why)
            }
        };
        if !answered && !attempts.unclear() {
            return attempts.end(&why, false);
        }
        match self.holding(t).await {
            Ok((Holding::Token(id), _)) if id == new.id => WriteOutcome::Written { created },
            Ok((held, _)) if answered => WriteOutcome::Unknown(format!(
                "the write succeeded but reading it back shows {} (something else writes there)",
                held.describe()
            )),
            Ok(_) => attempts.end(&why, true),
            Err(e) if answered => WriteOutcome::Unknown(format!(
                "the write succeeded but it cannot be read back: {e}"
            )),
            Err(e) => attempts.end(&format!("{why}; reading it back: {e}"), true),
        }
    }
}

fn token_holding(value: &SecretString) -> Holding {
    match token_id_of(value) {
        Some(id) => Holding::Token(id),
        None if value.expose_secret().is_empty() => Holding::Missing,
        None => Holding::Other,
    }
}

impl Store for AwsStore {
    fn prepare<'a>(
        &'a self,
        targets: &'a [&'a Target],
        _drift: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Holding>>, String>> {
        async move {
            let reads: Vec<BoxFuture<'_, Read>> =
                targets.iter().map(|t| self.holding(t).boxed()).collect();
            let results = futures_util::future::join_all(reads).await;
            let mut out = Vec::with_capacity(targets.len());
            for (t, r) in targets.iter().zip(results) {
                let (held, prepared) = r?;
                if let Some(p) = prepared {
                    lock(&self.prepared).insert(t.label.clone(), p);
                }
                out.push(Some(held));
            }
            Ok(out)
        }
        .boxed()
    }

    fn write<'a>(
        &'a self,
        target: &'a Target,
        new: &'a NewValue<'a>,
    ) -> BoxFuture<'a, WriteOutcome> {
        self.write_one(target, new).boxed()
    }

    fn inspect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Holding, String>> {
        async move { self.holding(target).await.map(|(h, _)| h) }.boxed()
    }

    fn describe(&self, target: &Target) -> String {
        match &target.place {
            Place::AwsSm { name, key: Some(k), .. } => format!(
                "set key `{k}` of the JSON value of AWS Secrets Manager secret `{name}` ({})",
                target.label
            ),
            Place::AwsSm { name, .. } => format!(
                "write AWS Secrets Manager secret `{name}` (PutSecretValue, new version AWSCURRENT) ({})",
                target.label
            ),
            Place::AwsSsm { name, .. } => {
                let key = match lock(&self.prepared).get(&target.label) {
                    Some(Prepared::Parameter { key_id }) => key_id.clone(),
                    _ => DEFAULT_SSM_KEY.to_string(),
                };
                format!(
                    "write SSM SecureString parameter `{name}` with KMS key `{key}` ({})",
                    target.label
                )
            }
            _ => format!("write {}", target.label),
        }
    }

    fn plan(&self, _targets: &[&Target]) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_tokens_are_uuid_shaped_and_fixed_per_run_and_target() {
        let v = SecretString::from("x".to_string());
        let t = crate::target::parse_targets(
            "aws-sm:eu-west-1/a\naws-sm:eu-west-1/b",
            &crate::target::SecretName::parse("T").unwrap(),
        )
        .unwrap();
        let new = |run| NewValue {
            value: &v,
            id: 1,
            run,
        };
        let a = AwsStore::request_token(&new("r1"), &t[0]);
        assert_eq!(a.len(), 36);
        assert!((32..=64).contains(&a.len()));
        assert_eq!(a, AwsStore::request_token(&new("r1"), &t[0]));
        assert_ne!(a, AwsStore::request_token(&new("r2"), &t[0]));
        assert_ne!(a, AwsStore::request_token(&new("r1"), &t[1]));
    }
}
