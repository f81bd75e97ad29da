//! The route_guide service: all four RPC kinds over a small feature database.
//!
//! State is per worker core (`Rc`/`RefCell`), which is how ringrpc services keep
//! state without locks: route notes left on one core are seen by calls on that
//! core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use ringrpc_service_api::{Request, Response, ResponseSink, Status, Streaming};

use crate::server::routeguide::route_guide_server::RouteGuide;
use crate::server::routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};

/// The feature database: a deterministic grid of named places, every fifth one
/// unnamed (a location with no feature).
pub fn features() -> Vec<Feature> {
    (0..100)
        .map(|i| {
            let location = Point {
                latitude: 400_000_000 + (i / 10) * 1_000_000,
                longitude: -740_000_000 + (i % 10) * 1_000_000,
            };
            let name = if i % 5 == 4 {
                String::new()
            } else {
                format!("Landmark {i}, Route 66")
            };
            Feature {
                name,
                location: Some(location),
            }
        })
        .collect()
}

/// The service of one worker.
pub struct RouteGuideService {
    features: Rc<Vec<Feature>>,
    notes: RefCell<HashMap<(i32, i32), Vec<RouteNote>>>,
}

impl RouteGuideService {
    /// A service over [`features`].
    pub fn new() -> RouteGuideService {
        RouteGuideService {
            features: Rc::new(features()),
            notes: RefCell::new(HashMap::new()),
        }
    }

    fn feature_at(&self, point: &Point) -> Option<&Feature> {
        self.features
            .iter()
            .find(|f| f.location.as_ref() == Some(point))
    }
}

impl Default for RouteGuideService {
    fn default() -> Self {
        RouteGuideService::new()
    }
}

impl RouteGuide for RouteGuideService {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        let point = request.into_inner();
        let feature = self.feature_at(&point).cloned().unwrap_or(Feature {
            name: String::new(),
            location: Some(point),
        });
        Ok(Response::new(feature))
    }

    async fn list_features(
        &self,
        request: Request<Rectangle>,
        mut responses: ResponseSink<Feature>,
    ) -> Result<(), Status> {
        let rect = request.into_inner();
        let (Some(lo), Some(hi)) = (rect.lo, rect.hi) else {
            return Err(Status::invalid_argument("a rectangle needs both corners"));
        };
        for feature in self
            .features
            .iter()
            .filter(|f| f.location.as_ref().is_some_and(|p| in_range(p, &lo, &hi)))
        {
            responses.send(feature.clone()).await?;
        }
        Ok(())
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let start = Instant::now();
        let mut points = request.into_inner();
        let mut summary = RouteSummary::default();
        let mut last: Option<Point> = None;
        while let Some(point) = points.message().await? {
            summary.point_count += 1;
            if self.feature_at(&point).is_some_and(|f| !f.name.is_empty()) {
                summary.feature_count += 1;
            }
            if let Some(last) = &last {
                summary.distance += distance_m(last, &point);
            }
            last = Some(point);
        }
        summary.elapsed_time = start.elapsed().as_secs() as i32;
        Ok(Response::new(summary))
    }

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
        mut responses: ResponseSink<RouteNote>,
    ) -> Result<(), Status> {
        let mut notes = request.into_inner();
        while let Some(note) = notes.message().await? {
            let location = note.location.unwrap_or_default();
            let key = (location.latitude, location.longitude);
            // Copy out first: no RefCell borrow may be held across an await.
            let earlier = self.notes.borrow().get(&key).cloned().unwrap_or_default();
            for earlier in earlier {
                responses.send(earlier).await?;
            }
            self.notes.borrow_mut().entry(key).or_default().push(note);
        }
        Ok(())
    }
}

fn in_range(p: &Point, lo: &Point, hi: &Point) -> bool {
    let (lat_lo, lat_hi) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    let (lon_lo, lon_hi) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    (lat_lo..=lat_hi).contains(&p.latitude) && (lon_lo..=lon_hi).contains(&p.longitude)
}

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: &Point, b: &Point) -> i32 {
    const COORD_FACTOR: f64 = 1e7;
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let lat1 = (a.latitude as f64 / COORD_FACTOR).to_radians();
    let lat2 = (b.latitude as f64 / COORD_FACTOR).to_radians();
    let dlat = lat2 - lat1;
    let dlon = ((b.longitude - a.longitude) as f64 / COORD_FACTOR).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    (2.0 * EARTH_RADIUS_M * h.sqrt().atan2((1.0 - h).sqrt())) as i32
}
