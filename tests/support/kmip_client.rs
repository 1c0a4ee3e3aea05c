//! A small KMIP client over mutual TLS: what the integration tests and
//! `keyward-bench` use to talk to a server the way vCenter does. Test support,
//! not part of the library; included with `#[path]` where it is needed.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use keyward::kmip::message::{
    ProtocolVersion, RequestBatchItem, RequestHeader, RequestMessage, ResponseBatchItem, ResponseMessage,
};
use keyward::kmip::{Operation, tags};
use keyward::ttlv::{self, HEADER_LEN, Item};

#[derive(Debug)]
pub(crate) enum ClientError {
    Io(std::io::Error),
    Tls(String),
    Decode(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o: {e}"),
            ClientError::Tls(e) => write!(f, "TLS: {e}"),
            ClientError::Decode(e) => write!(f, "response: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// TLS settings for connecting: the CA that issued the server's certificate and
/// the client's own certificate and key.
#[derive(Clone)]
pub(crate) struct ClientTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

/// Handshake choices a client may narrow (the benchmark uses them to compare
/// like with like: a fresh full handshake, or TLS 1.2 only like PyKMIP's server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientTlsOptions {
    /// Offer only TLS 1.2 (otherwise 1.3 and 1.2).
    pub tls12_only: bool,
    /// Keep session tickets/ids and resume with them on the next connection.
    pub resumption: bool,
}

impl Default for ClientTlsOptions {
    fn default() -> Self {
        ClientTlsOptions {
            tls12_only: false,
            resumption: true,
        }
    }
}

impl ClientTls {
    pub(crate) fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, ClientError> {
        Self::from_pem_files_with(ca, cert, key, ClientTlsOptions::default())
    }

    pub(crate) fn from_pem_files_with(
        ca: &Path,
        cert: &Path,
        key: &Path,
        options: ClientTlsOptions,
    ) -> Result<ClientTls, ClientError> {
        let tls = |e: &dyn std::fmt::Display| ClientError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls(&e))? {
            roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| tls(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls(&e))?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ));
        let builder = if options.tls12_only {
            builder.with_protocol_versions(&[&rustls::version::TLS12])
        } else {
            builder.with_safe_default_protocol_versions()
        };
        let mut config = builder
            .map_err(|e| tls(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        if !options.resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from("localhost").map_err(|e| tls(&e))?,
        })
    }
}

/// One connection to a KMIP server.
pub(crate) struct Client {
    stream: TlsStream<TcpStream>,
    version: ProtocolVersion,
}

impl Client {
    pub(crate) async fn connect(addr: std::net::SocketAddr, tls: &ClientTls) -> Result<Client, ClientError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tls
            .connector
            .connect(tls.server_name.clone(), tcp)
            .await
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Client {
            stream,
            version: ProtocolVersion::V1_1,
        })
    }

    /// The protocol version requests carry (vCenter speaks 1.1).
    pub(crate) fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Sends raw bytes and reads one framed response.
    pub(crate) async fn round_trip_bytes(&mut self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.send_bytes(request).await?;
        self.read_message().await?.ok_or_else(|| {
            ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ))
        })
    }

    /// Writes bytes as they are (tests use this to send malformed input).
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads one framed message; `None` when the server closed the connection
    /// cleanly before its first byte.
    pub(crate) async fn read_message(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        let mut header = [0u8; HEADER_LEN];
        if self.stream.read(&mut header[..1]).await? == 0 {
            return Ok(None);
        }
        self.stream.read_exact(&mut header[1..]).await?;
        let total = ttlv::frame_len(&header, keyward::limits::MAX_MESSAGE_BYTES_CEILING)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut message = header.to_vec();
        message.resize(total, 0);
        self.stream.read_exact(&mut message[HEADER_LEN..]).await?;
        Ok(Some(message))
    }

    /// Half-closes: sends TLS close_notify and shuts the write side, keeping the
    /// read side open for whatever the server still sends.
    pub(crate) async fn shutdown_write(&mut self) -> Result<(), ClientError> {
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Sends a request message and returns the decoded response message.
    pub(crate) async fn send(&mut self, request: &RequestMessage) -> Result<ResponseMessage, ClientError> {
        let bytes = ttlv::encode_to_vec(&request.to_item());
        let response = self.round_trip_bytes(&bytes).await?;
        let tree = ttlv::decode(&response).map_err(|e| ClientError::Decode(e.to_string()))?;
        ResponseMessage::from_item(&tree).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends a batch of (operation, batch item id, payload) and returns the items.
    pub(crate) async fn batch(
        &mut self,
        items: Vec<(Operation, Option<Vec<u8>>, Item)>,
    ) -> Result<Vec<ResponseBatchItem>, ClientError> {
        let count = i32::try_from(items.len()).unwrap_or(i32::MAX);
        let batch_items = items
            .into_iter()
            .map(|(operation, id, payload)| {
                let mut item = RequestBatchItem::new(operation, payload);
                item.unique_batch_item_id = id;
                item
            })
            .collect();
        let request = RequestMessage {
            header: RequestHeader::new(self.version, count),
            batch_items,
            unknown: Vec::new(),
        };
        Ok(self.send(&request).await?.batch_items)
    }

    /// One operation, one batch item.
    pub(crate) async fn call(
        &mut self,
        operation: Operation,
        payload: Item,
    ) -> Result<ResponseBatchItem, ClientError> {
        let mut items = self.batch(vec![(operation, None, payload)]).await?;
        items
            .pop()
            .ok_or_else(|| ClientError::Decode("response without batch items".into()))
    }

    /// Closes the connection cleanly.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// An empty Request Payload.
pub(crate) fn empty_payload() -> Item {
    Item::structure(tags::REQUEST_PAYLOAD, Vec::new())
}
