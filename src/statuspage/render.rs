//! The report as HTML (askama, `templates/statuspage.html`, escaped by default), the response
//! time sparkline as inline SVG, and the incidents as an Atom feed (RFC 4287).

use askama::Template;
use atom_syndication::{Content, Entry, Feed, Generator, Link, Person, Text};
use chrono::{DateTime, Utc};

use super::model::{self, AssetStatus, HistoryView, IncidentView, StatusReport};

/// Seconds between the page's reloads of itself (only while it is visible).
pub const REFRESH_SECONDS: u32 = 60;

#[derive(Template)]
#[template(path = "statuspage.html")]
struct Page<'a> {
    report: &'a StatusReport,
    refresh_ms: u32,
}

#[derive(Template)]
#[template(path = "asset_history.html")]
struct HistoryFragment<'a> {
    view: &'a HistoryView,
    uptime_24h: String,
    uptime_30d: String,
    uptime_90d: String,
    sparkline: String,
}

/// An asset's figures, sparkline and 90-day bar as HTML (escaped by askama), made once per
/// computation of the history and inserted as is into every page until the next.
pub fn history_fragment(view: &HistoryView) -> Result<String, askama::Error> {
    HistoryFragment {
        view,
        uptime_24h: model::percent_text(view.uptime.last_24h),
        uptime_30d: model::percent_text(view.uptime.last_30d),
        uptime_90d: model::percent_text(view.uptime.last_90d),
        sparkline: sparkline(&view.response_time_ms),
    }
    .render()
}

/// The page; escaping is askama's (every name and summary is text, never markup).
pub fn html(report: &StatusReport) -> Result<String, askama::Error> {
    Page { report, refresh_ms: REFRESH_SECONDS * 1000 }.render()
}

/// `2026-11-30 14:05 UTC`.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `3 h 12 min`, `45 min`, `under a minute`.
pub fn lasted(from: &DateTime<Utc>, to: &DateTime<Utc>) -> String {
    let minutes = (*to - *from).num_minutes().max(0);
    match (minutes / (24 * 60), (minutes / 60) % 24, minutes % 60) {
        (0, 0, 0) => "under a minute".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

impl AssetStatus {
    pub fn status_text(&self) -> &'static str {
        model::status_text(self.status)
    }

    pub fn status_class(&self) -> &'static str {
        model::status_class(self.status)
    }
}

impl IncidentView {
    pub fn started(&self) -> String {
        when(&self.started_at)
    }

    /// `ended 2026-11-30 14:05 UTC, after 12 min`, or `ongoing for 12 min`.
    pub fn duration(&self, now: &DateTime<Utc>) -> String {
        match &self.ended_at {
            Some(end) => format!("resolved {}, after {}", when(end), lasted(&self.started_at, end)),
            None => format!("ongoing for {}", lasted(&self.started_at, now)),
        }
    }
}

impl model::UpdateView {
    pub fn when(&self) -> String {
        when(&self.at)
    }
}

impl StatusReport {
    pub fn generated(&self) -> String {
        when(&self.generated_at)
    }
}

impl model::MaintenanceView {
    pub fn span(&self) -> String {
        format!("{} to {}", when(&self.start), when(&self.end))
    }
}

const SPARK_WIDTH: f64 = 120.0;
const SPARK_HEIGHT: f64 = 28.0;

/// An inline SVG line of the hourly averages (`None`: no probes that hour, a gap in the line),
/// scaled to the highest; its label says the average and the highest in words.
pub fn sparkline(points: &[Option<f64>]) -> String {
    let known: Vec<f64> = points.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    if known.is_empty() {
        return "<span class=\"nodata\">no response times yet</span>".into();
    }
    let max = known.iter().copied().fold(f64::MIN, f64::max).max(1.0);
    let average = known.iter().sum::<f64>() / known.len() as f64;
    let step = if points.len() > 1 { SPARK_WIDTH / (points.len() - 1) as f64 } else { 0.0 };
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, point) in points.iter().enumerate() {
        match point.filter(|v| v.is_finite()) {
            Some(value) => {
                let x = i as f64 * step;
                let y = SPARK_HEIGHT - 2.0 - (value / max) * (SPARK_HEIGHT - 4.0);
                if !current.is_empty() {
                    current.push(' ');
                }
                // Whole pixels: a sparkline 28 px high needs no more, and without the decimals the
                // page of 1,000 assets gzips to 118 KB instead of 151 KB (benches/status_page.rs).
                current.push_str(&format!("{x:.0},{y:.0}"));
            }
            None if !current.is_empty() => lines.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    let shapes: String = lines
        .iter()
        .map(|points| {
            if points.contains(' ') {
                format!("<polyline points=\"{points}\"/>")
            } else {
                // A lone hour: a dot.
                let (x, y) = points.split_once(',').unwrap_or(("0", "0"));
                format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"1.5\"/>")
            }
        })
        .collect();
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {SPARK_WIDTH} {SPARK_HEIGHT}\" width=\"{SPARK_WIDTH}\" height=\"{SPARK_HEIGHT}\" \
         role=\"img\" aria-label=\"Response time over 24 hours: average {average:.0} ms, highest {max:.0} ms\">{shapes}</svg>"
    )
}

/// The incidents as an Atom feed: one entry per incident (open and recent), newest first;
/// `base` is the site's URL as the client reached it (`http://host`), for the feed's id and links.
pub fn atom(report: &StatusReport, incidents: &[IncidentView], base: &str) -> String {
    let fixed = |at: &DateTime<Utc>| at.fixed_offset();
    let updated = incidents
        .iter()
        .map(|incident| incident.ended_at.unwrap_or(incident.started_at))
        .chain(incidents.iter().flat_map(|incident| incident.updates.iter().map(|update| update.at)))
        .max()
        .unwrap_or(report.generated_at);
    let link = |href: String, rel: &str, mime: Option<&str>| {
        let mut link = Link::default();
        link.set_href(href);
        link.set_rel(rel);
        link.set_mime_type(mime.map(str::to_string));
        link
    };
    let entries = incidents
        .iter()
        .map(|incident| {
            let state = if incident.ended_at.is_some() { "resolved" } else { "ongoing" };
            let mut text = format!(
                "{}\nStarted {}; {}.",
                incident.summary,
                incident.started(),
                incident.duration(&report.generated_at)
            );
            for update in &incident.updates {
                text.push_str(&format!("\n{} ({}): {}", when(&update.at), update.status, update.message));
            }
            let last = incident
                .updates
                .iter()
                .map(|update| update.at)
                .chain([incident.ended_at.unwrap_or(incident.started_at)])
                .max()
                .unwrap_or(incident.started_at);
            let mut content = Content::default();
            content.set_content_type(Some("text".to_string()));
            content.set_value(Some(text));
            let mut entry = Entry::default();
            entry.set_id(format!("urn:uuid:{}", incident.id));
            entry.set_title(Text::plain(format!("{}: {state} incident", incident.asset_name)));
            entry.set_updated(fixed(&last));
            entry.set_published(Some(fixed(&incident.started_at)));
            entry.set_content(Some(content));
            entry.set_links(vec![link(format!("{base}/"), "alternate", Some("text/html"))]);
            entry
        })
        .collect::<Vec<_>>();
    let mut author = Person::default();
    author.set_name(report.title.clone());
    let mut generator = Generator::default();
    generator.set_value("statusd");
    generator.set_version(Some(crate::VERSION.to_string()));
    let mut feed = Feed::default();
    feed.set_id(format!("{base}/feed.atom"));
    feed.set_title(Text::plain(format!("{}: incidents", report.title)));
    feed.set_subtitle(report.description.clone().map(Text::plain));
    feed.set_updated(fixed(&updated));
    feed.set_authors(vec![author]);
    feed.set_links(vec![
        link(format!("{base}/feed.atom"), "self", Some("application/atom+xml")),
        link(format!("{base}/"), "alternate", Some("text/html")),
    ]);
    feed.set_generator(Some(generator));
    feed.set_entries(entries);
    feed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparkline_is_numbers_with_gaps_for_hours_without_probes() {
        let svg = sparkline(&[Some(10.0), Some(20.0), None, Some(40.0), None]);
        assert!(svg.starts_with("<svg class=\"spark\""), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains("average 23 ms, highest 40 ms"), "{svg}");
        // The highest point touches the top margin, the lowest stays above the bottom.
        assert!(svg.contains("cx=\"90\" cy=\"2\""), "{svg}");
        assert_eq!(sparkline(&[None, None]), "<span class=\"nodata\">no response times yet</span>");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        assert_eq!(lasted(&at("2026-11-30T10:00:00Z"), &at("2026-11-30T10:00:30Z")), "under a minute");
        assert_eq!(lasted(&at("2026-11-30T10:00:00Z"), &at("2026-11-30T10:45:00Z")), "45 min");
        assert_eq!(lasted(&at("2026-11-30T10:00:00Z"), &at("2026-11-30T13:12:00Z")), "3 h 12 min");
        assert_eq!(lasted(&at("2026-11-28T10:00:00Z"), &at("2026-11-30T13:12:00Z")), "2 d 3 h");
    }
}
