//! A small KMIP client over mutual TLS: what the tests, the benchmark and the
//! appliance's boot test use to talk to a server the way vCenter does.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::kmip::message::{
    ProtocolVersion, RequestBatchItem, RequestHeader, RequestMessage, ResponseBatchItem, ResponseMessage,
};
use crate::kmip::{Operation, tags};
use crate::ttlv::{self, HEADER_LEN, Item};

#[derive(Debug)]
pub enum ClientError {
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
pub struct ClientTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl ClientTls {
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, ClientError> {
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
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls(&e))?;
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from("localhost").map_err(|e| tls(&e))?,
        })
    }
}

/// One connection to a KMIP server.
pub struct Client {
    stream: TlsStream<TcpStream>,
    version: ProtocolVersion,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr, tls: &ClientTls) -> Result<Client, ClientError> {
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
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Sends raw bytes and reads one framed response.
    pub async fn round_trip_bytes(&mut self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.stream.write_all(request).await?;
        self.stream.flush().await?;
        let mut header = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut header).await?;
        let total = ttlv::frame_len(&header, crate::limits::MAX_MESSAGE_BYTES_CEILING)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut message = header.to_vec();
        message.resize(total, 0);
        self.stream.read_exact(&mut message[HEADER_LEN..]).await?;
        Ok(message)
    }

    /// Sends a request message and returns the decoded response message.
    pub async fn send(&mut self, request: &RequestMessage) -> Result<ResponseMessage, ClientError> {
        let bytes = ttlv::encode_to_vec(&request.to_item());
        let response = self.round_trip_bytes(&bytes).await?;
        let tree = ttlv::decode(&response).map_err(|e| ClientError::Decode(e.to_string()))?;
        ResponseMessage::from_item(&tree).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends a batch of (operation, batch item id, payload) and returns the items.
    pub async fn batch(
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
    pub async fn call(
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
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// An empty Request Payload.
pub fn empty_payload() -> Item {
    Item::structure(tags::REQUEST_PAYLOAD, Vec::new())
}
