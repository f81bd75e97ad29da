//! A route_guide client (tonic) that exercises all four RPC kinds and prints
//! what it got; shared by `route-guide-client` and `demo`.

use std::error::Error;
use std::net::SocketAddr;

use crate::client::routeguide::route_guide_client::RouteGuideClient;
use crate::client::routeguide::{Point, Rectangle, RouteNote};

fn point(latitude: i32, longitude: i32) -> Point {
    Point {
        latitude,
        longitude,
    }
}

/// Runs GetFeature, ListFeatures, RecordRoute and RouteChat against `addr`.
pub async fn exercise(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let mut client = RouteGuideClient::connect(format!("http://{addr}")).await?;

    println!("== GetFeature (unary)");
    for p in [point(400_000_000, -740_000_000), point(1, 1)] {
        let feature = client.get_feature(p).await?.into_inner();
        let name = if feature.name.is_empty() {
            "(no feature)"
        } else {
            &feature.name
        };
        println!("  at ({}, {}): {name}", p.latitude, p.longitude);
    }

    println!("== ListFeatures (server streaming)");
    let rect = Rectangle {
        lo: Some(point(400_000_000, -750_000_000)),
        hi: Some(point(402_000_000, -737_000_000)),
    };
    let mut stream = client.list_features(rect).await?.into_inner();
    let mut listed = 0;
    while let Some(feature) = stream.message().await? {
        if listed < 3 {
            println!(
                "  {}",
                if feature.name.is_empty() {
                    "(unnamed)"
                } else {
                    &feature.name
                }
            );
        }
        listed += 1;
    }
    println!("  {listed} features in the rectangle");

    println!("== RecordRoute (client streaming)");
    let route: Vec<Point> = (0..10)
        .map(|i| {
            point(
                400_000_000 + i * 1_000_000,
                -740_000_000 + (i % 3) * 1_000_000,
            )
        })
        .collect();
    let summary = client
        .record_route(tokio_stream_iter(route))
        .await?
        .into_inner();
    println!(
        "  {} points, {} features, {} m, {} s",
        summary.point_count, summary.feature_count, summary.distance, summary.elapsed_time
    );

    println!("== RouteChat (bidirectional streaming)");
    let notes: Vec<RouteNote> = ["first", "second", "third", "fourth"]
        .iter()
        .enumerate()
        .map(|(i, text)| RouteNote {
            location: Some(point(0, (i % 2) as i32)),
            message: (*text).to_owned(),
        })
        .collect();
    let mut replies = client
        .route_chat(tokio_stream_iter(notes))
        .await?
        .into_inner();
    while let Some(note) = replies.message().await? {
        let at = note.location.unwrap_or_default();
        println!(
            "  earlier note at ({}, {}): {}",
            at.latitude, at.longitude, note.message
        );
    }
    Ok(())
}

/// A `Stream` over a vector, without pulling in a stream utility crate.
pub fn tokio_stream_iter<T: Send + Unpin + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    IterStream(items.into_iter())
}

struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}
