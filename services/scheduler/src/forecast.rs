//! Forecast: every upcoming run of every enabled schedule with its estimated duration, the
//! hour × weekday heatmap of estimated concurrent runs, and overlapping runs that share a store
//! or a worker pool.

use cairn_api::v1::{ForecastRequest, ForecastResponse};

use crate::{
    State,
    error::{Error, Result},
};

/// Forecast.
pub async fn forecast(_state: &State, _req: ForecastRequest) -> Result<ForecastResponse> {
    Err(Error::WrongState("Forecast arrives with the CLI issue".into()))
}
