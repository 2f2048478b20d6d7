//! A JAMNP-S peer on quinn + rustls, written from the protocol text (simple.md).
//!
//! quinn-peer dial ADDR EXPECTED_KEY [options]   connect, verify the peer is EXPECTED_KEY
//! quinn-peer listen ADDR [options]              accept one connection
//! options: --seed HEX32 --alpn STR (required) --san NAME --expect KEY --final-slot N
//!          --request HASH --announcements N --wait-stdin --timeout SECS
//! One JSON object per line on stdout per observation; exit 0 when done, 1 on failure.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const MAX_MESSAGE: usize = 1 << 20;

/// `e` + 52 characters: the key as a little-endian 256-bit integer, 5 bits at a time
/// from the least significant end.
fn alt_name(key: &[u8; 32]) -> String {
    let mut out = String::from("e");
    for i in 0..52 {
        let (byte, shift) = ((5 * i) / 8, (5 * i) % 8);
        let mut v = (key[byte] as u16) >> shift;
        if byte + 1 < 32 {
            v |= (key[byte + 1] as u16) << (8 - shift);
        }
        out.push(ALPHABET[(v & 31) as usize] as char);
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Result<[u8; 32], String> {
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or(format!("not hex: {s:?}"))?;
    bytes.try_into().map_err(|_| format!("expected 32 bytes of hex: {s:?}"))
}

/// A JSON value: a string (escaped) or a number.
trait Json {
    fn json(&self) -> String;
}
impl Json for u64 {
    fn json(&self) -> String {
        self.to_string()
    }
}
impl Json for String {
    fn json(&self) -> String {
        let escape = |c: char| match c {
            '"' | '\\' => format!("\\{c}"),
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        };
        format!("\"{}\"", self.chars().map(escape).collect::<String>())
    }
}

/// One observation: a JSON object on one line of stdout.
macro_rules! emit {
    ($event:literal $(, $k:literal => $v:expr)* $(,)?) => {{
        #[allow(unused_mut)]
        let mut line = format!("{{\"event\":\"{}\"", $event);
        $(line += &format!(",\"{}\":{}", $k, Json::json(&$v));)*
        println!("{line}}}");
    }};
}

// ---------------------------------------------------------------- certificates (DER)

/// One DER element at `pos`: (tag, content, end).
fn tlv(d: &[u8], pos: usize) -> Result<(u8, &[u8], usize), String> {
    let tag = *d.get(pos).ok_or("truncated tag")?;
    let first = *d.get(pos + 1).ok_or("truncated length")? as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return Err("bad DER length".into());
        }
        let raw = d.get(pos + 2..pos + 2 + n).ok_or("truncated length")?;
        (raw.iter().fold(0usize, |a, b| (a << 8) | *b as usize), pos + 2 + n)
    };
    let content = d.get(start..start + len).ok_or("element overruns its container")?;
    Ok((tag, content, start + len))
}

fn children(d: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let (mut out, mut pos) = (Vec::new(), 0);
    while pos < d.len() {
        let (tag, content, end) = tlv(d, pos)?;
        out.push((tag, content));
        pos = end;
    }
    Ok(out)
}

const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70]; // 1.3.101.112
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

/// The JAMNP-S checks: an Ed25519 key and exactly one DNS alt-name equal to alt_name(key).
fn certificate_key(der: &[u8]) -> Result<[u8; 32], String> {
    let (_, cert, _) = tlv(der, 0)?;
    let tbs = children(children(cert)?.first().ok_or("empty certificate")?.1)?;
    let skip = usize::from(tbs.first().map(|t| t.0) == Some(0xa0)); // [0] version
    let spki = children(tbs.get(skip + 5).ok_or("short tbsCertificate")?.1)?;
    let algorithm = children(spki.first().ok_or("no key algorithm")?.1)?;
    if algorithm.first().map(|a| a.1) != Some(ED25519_OID) {
        return Err("certificate key is not Ed25519".into());
    }
    let bits = spki.get(1).ok_or("no public key")?.1;
    let key: [u8; 32] = match bits {
        [0, rest @ ..] => rest.try_into().map_err(|_| "Ed25519 key is not 32 bytes")?,
        _ => return Err("bad public key bit string".into()),
    };
    let mut names = None;
    for (tag, content) in &tbs[skip + 6..] {
        if *tag != 0xa3 {
            continue;
        }
        for (_, ext) in children(children(content)?.first().ok_or("empty extensions")?.1)? {
            let fields = children(ext)?;
            if fields.first().map(|f| f.1) == Some(SAN_OID) {
                let (_, value, _) = tlv(fields.last().unwrap().1, 0)?;
                names = Some(children(value)?);
            }
        }
    }
    let names = names.ok_or("no subjectAltName")?;
    let expected = alt_name(&key);
    match names.as_slice() {
        [(0x82, dns)] if *dns == expected.as_bytes() => Ok(key),
        [(0x82, dns)] => Err(format!(
            "SAN {:?} is not the alt-name {expected} of the certificate's key",
            String::from_utf8_lossy(dns)
        )),
        _ => Err(format!("expected one DNS alt-name, got {} names", names.len())),
    }
}

#[derive(Debug)]
struct JamVerifier {
    expected: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

type Signed = Result<HandshakeSignatureValid, rustls::Error>;

impl JamVerifier {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let key = certificate_key(cert).map_err(rustls::Error::General)?;
        match self.expected {
            Some(want) if want != key => Err(rustls::Error::General(format!(
                "peer key {} is not the expected {}",
                hex(&key),
                hex(&want)
            ))),
            _ => Ok(()),
        }
    }
}

/// The signature checks both verifier roles share: TLS 1.3 only, Ed25519 only, the
/// signature over the transcript verified by rustls/webpki against the certificate.
macro_rules! signatures {
    () => {
        fn verify_tls12_signature(
            &self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct,
        ) -> Signed {
            verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct,
        ) -> Signed {
            verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }
    };
}

impl ServerCertVerifier for JamVerifier {
    fn verify_server_cert(
        &self, end_entity: &CertificateDer<'_>, _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>, _ocsp: &[u8], _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|_| ServerCertVerified::assertion())
    }
    signatures!();
}

impl ClientCertVerifier for JamVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn verify_client_cert(
        &self, end_entity: &CertificateDer<'_>, _intermediates: &[CertificateDer<'_>], _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|_| ClientCertVerified::assertion())
    }
    signatures!();
}

// ------------------------------------------------------------------------- options

#[derive(Default)]
struct Opts {
    mode: String,
    addr: Option<SocketAddr>,
    expect: Option<[u8; 32]>,
    seed: [u8; 32],
    alpn: String,
    san: Option<String>,
    final_slot: u32,
    request: Option<[u8; 32]>,
    announcements: u32,
    wait_stdin: bool,
    timeout: u64,
}

fn parse_args() -> Result<Opts, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let mode = it.next().ok_or("usage: quinn-peer dial ADDR KEY | listen ADDR [options]")?;
    let addr = it.next().ok_or("missing ADDR")?.parse().map_err(|e| format!("ADDR: {e}"))?;
    let mut o = Opts { mode: mode.clone(), addr: Some(addr), timeout: 10, ..Opts::default() };
    match mode.as_str() {
        "dial" => o.expect = Some(unhex32(it.next().ok_or("missing EXPECTED_KEY")?)?),
        "listen" => {}
        other => return Err(format!("unknown mode {other:?}")),
    }
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => o.seed = unhex32(value()?)?,
            "--alpn" => o.alpn = value()?.clone(),
            "--san" => o.san = Some(value()?.clone()),
            "--expect" => o.expect = Some(unhex32(value()?)?),
            "--final-slot" => o.final_slot = value()?.parse().map_err(|e| format!("{e}"))?,
            "--request" => o.request = Some(unhex32(value()?)?),
            "--announcements" => o.announcements = value()?.parse().map_err(|e| format!("{e}"))?,
            "--timeout" => o.timeout = value()?.parse().map_err(|e| format!("{e}"))?,
            "--wait-stdin" => o.wait_stdin = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.alpn.is_empty() {
        return Err("--alpn is required (jamnp-s/0/<8 hex nibbles of the genesis hash>)".into());
    }
    Ok(o)
}

// --------------------------------------------------------------------- JAMNP-S

fn frame(kind: Option<u8>, body: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = kind.into_iter().collect();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// One message (u32 LE length ++ content), or None at a clean end of stream or when
/// the peer resets it (reported: an unsatisfiable CE request is answered that way).
async fn read_message(recv: &mut quinn::RecvStream) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code))) => {
            emit!("reset", "stream" => recv.id().index(), "code" => code.into_inner());
            return Ok(None);
        }
        Err(e) => return Err(format!("reading a message length: {e}")),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(format!("message of {len} bytes is too large"));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(|e| format!("reading a message: {e}"))?;
    Ok(Some(body))
}

/// GP variable-length natural: the count of leading one bits of the first byte says how
/// many little-endian bytes follow.
fn natural(d: &[u8]) -> Result<(u64, usize), String> {
    let first = *d.first().ok_or("truncated length prefix")?;
    let extra = first.leading_ones() as usize;
    let rest = d.get(1..1 + extra).ok_or("truncated length prefix")?;
    let low = rest.iter().rev().fold(0u64, |a, b| (a << 8) | *b as u64);
    let high = if extra == 8 { 0 } else { (first as u64) & (0xff >> (extra + 1)) };
    Ok((low | (high << (8 * extra)), 1 + extra))
}

/// Handshake = Final ++ len++[Leaf]; Final = Leaf = Header Hash ++ Slot (u32 LE).
fn our_handshake(final_slot: u32) -> Vec<u8> {
    let mut h = vec![0u8; 32];
    h.extend_from_slice(&final_slot.to_le_bytes());
    h.push(1); // one leaf
    h.extend_from_slice(&[0xab; 32]);
    h.extend_from_slice(&(final_slot + 1).to_le_bytes());
    h
}

fn u32_at(d: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as u64
}

fn report_handshake(body: &[u8]) -> Result<(), String> {
    let (leaves, used) = natural(body.get(36..).ok_or("truncated handshake")?)?;
    if body.len() as u64 != 36 + used as u64 + 36 * leaves {
        return Err(format!("handshake of {} bytes does not hold {leaves} leaves", body.len()));
    }
    emit!("up0_handshake", "final_hash" => hex(&body[..32]), "final_slot" => u32_at(body, 32), "leaves" => leaves);
    Ok(())
}

type Up0 = (quinn::SendStream, quinn::RecvStream);

/// UP 0: the connection's initiator opens the stream (kind byte 0); both sides send
/// their handshake at once. The caller keeps the halves: UP streams live as long as
/// the connection (dropping them would FIN ours and STOP_SENDING the peer's).
async fn up0(conn: &quinn::Connection, initiator: bool, final_slot: u32) -> Result<Up0, String> {
    let (mut send, mut recv) = if initiator { conn.open_bi().await } else { conn.accept_bi().await }
        .map_err(|e| format!("UP 0 stream: {e}"))?;
    if !initiator {
        let mut kind = [0u8; 1];
        recv.read_exact(&mut kind).await.map_err(|e| format!("stream kind: {e}"))?;
        if kind[0] != 0 {
            return Err(format!("expected UP 0, the peer opened kind {}", kind[0]));
        }
    }
    let msg = frame(initiator.then_some(0), &our_handshake(final_slot));
    send.write_all(&msg).await.map_err(|e| e.to_string())?;
    let body = read_message(&mut recv).await?.ok_or("UP 0 ended before the handshake")?;
    report_handshake(&body)?;
    Ok((send, recv))
}

/// CE 128: Header Hash ++ Direction (1: descending inclusive) ++ Maximum Blocks, FIN;
/// the answer is one message per block, then FIN.
async fn ce128(conn: &quinn::Connection, hash: &[u8; 32]) -> Result<(), String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("open CE 128: {e}"))?;
    let mut req = hash.to_vec();
    req.push(1);
    req.extend_from_slice(&4u32.to_le_bytes());
    send.write_all(&frame(Some(128), &req)).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let mut count = 0u64;
    while let Some(block) = read_message(&mut recv).await? {
        // GP header: parent hash, prior state root, extrinsic hash, slot (u32 LE), ...
        if block.len() < 100 {
            return Err(format!("a block of {} bytes is shorter than a header", block.len()));
        }
        emit!("block", "parent" => hex(&block[..32]), "slot" => u32_at(&block, 96), "size" => block.len() as u64);
        count += 1;
    }
    emit!("ce128_done", "blocks" => count);
    Ok(())
}

// ------------------------------------------------------------------------- main

fn tls_identity(o: &Opts) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>, [u8; 32]), String> {
    // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410).
    let mut pkcs8 = vec![0x30, 0x2e, 2, 1, 0, 0x30, 5, 6, 3, 0x2b, 0x65, 0x70, 4, 0x22, 4, 0x20];
    pkcs8.extend_from_slice(&o.seed);
    let der = PrivatePkcs8KeyDer::from(pkcs8);
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)
        .map_err(|e| format!("key: {e}"))?;
    let key: [u8; 32] = pair.public_key_raw().try_into().map_err(|_| "key size")?;
    let san = o.san.clone().unwrap_or_else(|| alt_name(&key));
    let params = rcgen::CertificateParams::new(vec![san]).map_err(|e| format!("SAN: {e}"))?;
    let cert = params.self_signed(&pair).map_err(|e| format!("certificate: {e}"))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(der), key))
}

/// The endpoint: a client one for `dial`, a server one (bound and announced) for `listen`.
fn endpoint(o: &Opts) -> Result<quinn::Endpoint, String> {
    #[allow(deprecated)] // ring has no post-quantum key exchange; JAMNP-S needs none
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(JamVerifier { expected: o.expect, provider: provider.clone() });
    let (cert, key, our_key) = tls_identity(&o)?;
    let e = |e: rustls::Error| e.to_string();
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into().unwrap()));
    let transport = Arc::new(transport);
    let addr = o.addr.unwrap();
    if o.mode == "dial" {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(e)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![cert], key)
            .map_err(e)?;
        tls.alpn_protocols = vec![o.alpn.clone().into_bytes()];
        let quic = QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(transport);
        let local = SocketAddr::new(if addr.is_ipv4() { [0u8; 4].into() } else { [0u16; 8].into() }, 0);
        let mut endpoint = quinn::Endpoint::client(local).map_err(|e| format!("bind: {e}"))?;
        endpoint.set_default_client_config(config);
        emit!("local", "key" => hex(&our_key), "alt_name" => alt_name(&our_key));
        Ok(endpoint)
    } else {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(e)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .map_err(e)?;
        tls.alpn_protocols = vec![o.alpn.clone().into_bytes()];
        let quic = QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(transport);
        let endpoint = quinn::Endpoint::server(config, addr).map_err(|e| format!("bind: {e}"))?;
        let bound = endpoint.local_addr().map_err(|e| e.to_string())?.to_string();
        emit!("listening", "addr" => bound, "key" => hex(&our_key), "alt_name" => alt_name(&our_key));
        Ok(endpoint)
    }
}

async fn run(o: Opts) -> Result<(), String> {
    let endpoint = endpoint(&o)?;
    let result = session(&endpoint, &o).await;
    // Whatever happened, let the last packets (our close, or a TLS alert) go out.
    endpoint.close(0u32.into(), b"");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

async fn session(endpoint: &quinn::Endpoint, o: &Opts) -> Result<(), String> {
    let conn = if o.mode == "dial" {
        let name = alt_name(&o.expect.unwrap());
        endpoint.connect(o.addr.unwrap(), &name).map_err(|e| format!("connect: {e}"))?.await
    } else {
        endpoint.accept().await.ok_or("endpoint closed")?.await
    }
    .map_err(|e| format!("handshake: {e}"))?;
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    let peer = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().map(|c| certificate_key(c)))
        .ok_or("the peer presented no certificate")??;
    emit!("connected", "peer_key" => hex(&peer), "alpn" => alpn, "role" => o.mode.clone());
    let work = async {
        let mut up0 = up0(&conn, o.mode == "dial", o.final_slot).await?;
        if let Some(hash) = o.request {
            ce128(&conn, &hash).await?;
        }
        for _ in 0..o.announcements {
            // Announcement = Header ++ Final: the Final is the last 36 bytes.
            let a = read_message(&mut up0.1).await?.ok_or("UP 0 ended before an announcement")?;
            let f = a.len().checked_sub(36).filter(|f| *f >= 100).ok_or("announcement too short")?;
            let (parent, final_hash) = (hex(&a[..32]), hex(&a[f..f + 32]));
            let (slot, final_slot) = (u32_at(&a, 96), u32_at(&a, f + 32));
            emit!("announcement", "parent" => parent, "slot" => slot, "final_hash" => final_hash, "final_slot" => final_slot);
        }
        Ok::<Up0, String>(up0)
    };
    // Any failure once connected: say how the peer closed, if it did.
    let _up0 = match work.await {
        Ok(up0) => up0,
        Err(e) => {
            if let Some(quinn::ConnectionError::ApplicationClosed(c)) = conn.close_reason() {
                let reason = String::from_utf8_lossy(&c.reason).into_owned();
                emit!("closed", "code" => c.error_code.into_inner(), "reason" => reason);
            }
            return Err(e);
        }
    };
    emit!("done");
    if o.wait_stdin {
        let stdin =
            tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()));
        tokio::select! {
            _ = stdin => {}
            why = conn.closed() => return Err(format!("connection closed while waiting: {why}")),
        }
    }
    conn.close(0u32.into(), b"done");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let result = match parse_args() {
        Ok(o) => {
            let limit = Duration::from_secs(o.timeout);
            let wait = o.wait_stdin;
            match tokio::time::timeout(limit, run(o)).await {
                Ok(r) => r,
                Err(_) if wait => Err("timed out (the deadline includes --wait-stdin)".into()),
                Err(_) => Err("timed out".into()),
            }
        }
        Err(e) => Err(e),
    };
    if let Err(reason) = result {
        emit!("error", "reason" => reason);
        std::process::exit(1);
    }
}
