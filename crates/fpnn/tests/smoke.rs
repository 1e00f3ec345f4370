use fpnn::client::Client;
use fpnn::server::Server;
use fpnn::Value;

#[tokio::test]
async fn echo_round_trip() {
    let server = Server::builder()
        .route("echo", |_c, p: Value| async move { Ok(p) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::new(server.local_addr().to_string());
    let v = Value::map().with("x", 1).with("s", "hi");
    assert_eq!(client.quest("echo", &v).await.unwrap(), v);
    let err = client.quest("nope", &v).await.unwrap_err();
    assert_eq!(err.code(), 20004);
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let v = Value::map().with("i", i);
            assert_eq!(c.quest("echo", &v).await.unwrap(), v);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.shutdown().await;
}
