//! A real S3 protocol server on a loopback port for the object-store tests and benchmark: s3s
//! (SigV4, multipart uploads, ranged GETs as the AWS SDKs speak them) over s3s-fs, which keeps
//! each bucket as a directory. One per process, on a thread of its own so that it outlives
//! every test's runtime.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Access key of the server's one user.
pub(crate) const ACCESS_KEY: &str = "attendant-test";
/// Its secret key.
pub(crate) const SECRET_KEY: &str = "attendant-test-secret";

/// The running server.
pub(crate) struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
    /// The directory holding the buckets.
    pub(crate) root: PathBuf,
}

impl S3Server {
    /// Creates an empty bucket.
    pub(crate) fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).unwrap();
    }
}

/// The server, started on first use.
pub(crate) fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // The bucket's directory outlives every test (the server is a `static`); a process
        // directory is removed by the next run.
        let root = attendant_e2e::process_dir::ProcessDir::new("s3s")
            .unwrap()
            .path()
            .to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let fs = s3s_fs::FileSystem::new(&root).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let service = service.clone();
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            });
        });
        S3Server { endpoint, root }
    })
}
