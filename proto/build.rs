//! Compiles `agora/v1/*.proto` with tonic + prost.
//!
//! A fresh machine has no `protoc`; the vendored binary from `protoc-bin-vendored` is used
//! unless `PROTOC` already names one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the environment
        // concurrently.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    let files = [
        "agora/v1/common.proto",
        "agora/v1/scheduler.proto",
        "agora/v1/agent.proto",
        "agora/v1/executor.proto",
        "agora/v1/operator.proto",
        // The subset of etcd's v3 API the master's HA mode speaks (its own client).
        "etcd/etcdserverpb.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    // Every service's codec: prost's with small buffers (see `src/codec.rs`).
    tonic_prost_build::configure()
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_protos(&files, &["."])?;
    Ok(())
}
