//! The ticket journal as a PDF report a supervisory body accepts: the company's
//! name and the period on every page, one line per ticket with its registration
//! number, times (registered, deadline, accepted, done, closed) and outcome, pages
//! numbered. Text is set in DejaVu Sans (a free font with Cyrillic, committed under
//! `assets/fonts/` with its licence), embedded whole as a CID font with a
//! `ToUnicode` map so the text can be searched and extracted.
//!
//! Pure: tickets go in one at a time (the caller reads them in batches), each page
//! is compressed and written as soon as it is full, and [`TicketReport::finish`]
//! returns the file's bytes. Memory is the finished pages (compressed) plus one
//! page.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

use crate::store::export::JournalTicket;

/// The embedded font.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// A4 landscape, in points.
const PAGE_W: f32 = 842.0;
const PAGE_H: f32 = 595.0;
const MARGIN: f32 = 28.0;
const SIZE: f32 = 7.5;
const LINE: f32 = 11.0;
/// The first table line's baseline.
const TOP: f32 = PAGE_H - MARGIN - 3.0 * LINE;

/// Columns: title and width in points.
const COLUMNS: [(&str, f32); 11] = [
    ("№", 40.0),
    ("Зарегистрирована", 62.0),
    ("Категория", 52.0),
    ("Адрес", 150.0),
    ("Причина", 110.0),
    ("Исполнитель", 90.0),
    ("Срок", 62.0),
    ("Принята", 62.0),
    ("Выполнена", 62.0),
    ("Закрыта", 62.0),
    ("Итог", 24.0 + 28.0),
];

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The embedded font could not be read.
    #[error("the report font cannot be read: {0}")]
    Font(String),
}

/// A ticket journal being written.
pub struct TicketReport {
    pdf: Pdf,
    face: ttf_parser::Face<'static>,
    next_ref: i32,
    font_ref: Ref,
    pages: Vec<Ref>,
    /// Glyphs used: id → (character, advance in font units).
    glyphs: BTreeMap<u16, (char, u16)>,
    content: Content,
    y: f32,
    company: String,
    period: String,
    zone: Tz,
    rows: u64,
}

impl std::fmt::Debug for TicketReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketReport")
            .field("pages", &self.pages.len())
            .field("rows", &self.rows)
            .finish()
    }
}

fn outcome(t: &JournalTicket) -> &'static str {
    use crate::store::TicketStatus::*;
    match t.ticket.status {
        Registered => "не принята",
        Accepted => "принята",
        InProgress => "в работе",
        Done => "выполнена",
        Closed => "закрыта",
        Cancelled => "отменена",
    }
}

fn category(t: &JournalTicket) -> &'static str {
    use crate::store::Category::*;
    match t.ticket.category {
        Emergency => "аварийная",
        Planned => "плановая",
        Paid => "платная",
    }
}

impl TicketReport {
    /// A report for `company` over `from`..`to`, times shown in `zone`.
    pub fn new(
        company: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        zone: Tz,
    ) -> Result<Self, ReportError> {
        let face =
            ttf_parser::Face::parse(FONT, 0).map_err(|e| ReportError::Font(e.to_string()))?;
        let local = |t: DateTime<Utc>| t.with_timezone(&zone).format("%d.%m.%Y %H:%M").to_string();
        let mut report = Self {
            pdf: Pdf::new(),
            face,
            next_ref: 1,
            font_ref: Ref::new(1),
            pages: Vec::new(),
            glyphs: BTreeMap::new(),
            content: Content::new(),
            y: 0.0,
            company: company.to_owned(),
            period: format!("{} — {} ({zone})", local(from), local(to)),
            zone,
            rows: 0,
        };
        report.font_ref = report.alloc();
        report.start_page();
        Ok(report)
    }

    fn alloc(&mut self) -> Ref {
        self.next_ref += 1;
        Ref::new(self.next_ref)
    }

    /// Glyph ids of `text` cut to `width` points at `size` (with "…" when cut).
    fn encode(&mut self, text: &str, size: f32, width: f32) -> Vec<u8> {
        let units = f32::from(self.face.units_per_em());
        let limit = width * units / size;
        let glyphs: Vec<(u16, u16)> = text
            .chars()
            .map(|c| self.glyph(if c.is_control() { ' ' } else { c }))
            .collect();
        let total: f32 = glyphs.iter().map(|g| f32::from(g.1)).sum();
        let mut out = Vec::with_capacity(glyphs.len() * 2);
        if total <= limit {
            for (gid, _) in glyphs {
                out.extend_from_slice(&gid.to_be_bytes());
            }
            return out;
        }
        let ellipsis = self.glyph('…');
        let mut used = f32::from(ellipsis.1);
        for (gid, adv) in glyphs {
            if used + f32::from(adv) > limit {
                break;
            }
            used += f32::from(adv);
            out.extend_from_slice(&gid.to_be_bytes());
        }
        out.extend_from_slice(&ellipsis.0.to_be_bytes());
        out
    }

    /// The glyph of `c` (the font's "missing" glyph 0 when it has none), recorded as
    /// used.
    fn glyph(&mut self, c: char) -> (u16, u16) {
        let gid = self.face.glyph_index(c).map_or(0, |g| g.0);
        let adv = self
            .face
            .glyph_hor_advance(ttf_parser::GlyphId(gid))
            .unwrap_or(0);
        self.glyphs.entry(gid).or_insert((c, adv));
        (gid, adv)
    }

    fn text(&mut self, x: f32, y: f32, size: f32, width: f32, text: &str) {
        let glyphs = self.encode(text, size, width);
        self.content
            .begin_text()
            .set_font(Name(b"F1"), size)
            .next_line(x, y)
            .show(Str(&glyphs))
            .end_text();
    }

    fn start_page(&mut self) {
        self.content = Content::new();
        let page_no = self.pages.len() + 1;
        let company = self.company.clone();
        let head = format!("Журнал заявок · {company}");
        self.text(
            MARGIN,
            PAGE_H - MARGIN - 4.0,
            11.0,
            PAGE_W - 2.0 * MARGIN - 80.0,
            &head,
        );
        let period = format!("Период: {}", self.period);
        self.text(MARGIN, PAGE_H - MARGIN - LINE - 6.0, 8.0, 500.0, &period);
        self.text(
            PAGE_W - MARGIN - 70.0,
            PAGE_H - MARGIN - 4.0,
            8.0,
            70.0,
            &format!("Стр. {page_no}"),
        );
        let mut x = MARGIN;
        let y = TOP;
        for (title, w) in COLUMNS {
            self.text(x, y, SIZE, w - 3.0, title);
            x += w;
        }
        self.content
            .set_line_width(0.5)
            .move_to(MARGIN, y - 3.0)
            .line_to(PAGE_W - MARGIN, y - 3.0)
            .stroke();
        self.y = y - LINE;
    }

    fn end_page(&mut self) {
        let content = std::mem::replace(&mut self.content, Content::new()).finish();
        let page = self.alloc();
        let stream = self.alloc();
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(content.as_slice(), 6);
        self.pdf.stream(stream, &packed).filter(Filter::FlateDecode);
        let mut p = self.pdf.page(page);
        p.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        p.parent(Ref::new(1));
        p.contents(stream);
        p.resources().fonts().pair(Name(b"F1"), self.font_ref);
        p.finish();
        self.pages.push(page);
    }

    /// Adds one ticket's line (a new page when this one is full).
    pub fn add(&mut self, t: &JournalTicket) {
        if self.y < MARGIN {
            self.end_page();
            self.start_page();
        }
        let zone = self.zone;
        let local = |at: Option<DateTime<Utc>>| {
            at.map(|t| t.with_timezone(&zone).format("%d.%m.%y %H:%M").to_string())
                .unwrap_or_else(|| "—".to_owned())
        };
        let ticket = &t.ticket;
        let address = match &ticket.apartment {
            Some(a) => format!("{}, кв. {a}", ticket.address),
            None => ticket.address.clone(),
        };
        let cells: [String; 11] = [
            ticket.number.clone(),
            local(Some(ticket.created_at)),
            category(t).to_owned(),
            address,
            ticket.reason.clone(),
            ticket
                .executor_name
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
            local(Some(ticket.deadline_at)),
            local(t.accepted_at),
            local(t.done_at),
            local(ticket.closed_at),
            outcome(t).to_owned(),
        ];
        let mut x = MARGIN;
        let y = self.y;
        for (cell, (_, w)) in cells.iter().zip(COLUMNS) {
            self.text(x, y, SIZE, w - 3.0, cell);
            x += w;
        }
        self.y -= LINE;
        self.rows += 1;
    }

    /// Lines written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The finished file: the last page, the page tree, the font (with the widths
    /// and the `ToUnicode` map of every glyph used) and the catalog.
    pub fn finish(mut self, total_line: &str) -> Vec<u8> {
        let y = (self.y - LINE).max(MARGIN - LINE);
        self.text(MARGIN, y, 8.0, 400.0, total_line);
        self.end_page();
        let catalog = self.alloc();
        let cid = self.alloc();
        let descriptor = self.alloc();
        let cmap_ref = self.alloc();
        let file = self.alloc();
        self.pdf.catalog(catalog).pages(Ref::new(1));
        let count = i32::try_from(self.pages.len()).unwrap_or(i32::MAX);
        self.pdf
            .pages(Ref::new(1))
            .kids(self.pages.iter().copied())
            .count(count);
        let units = f32::from(self.face.units_per_em());
        let scale = |v: f32| v * 1000.0 / units;
        let name = Name(b"DejaVuSans");
        let info = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        self.pdf
            .type0_font(self.font_ref)
            .base_font(name)
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid)
            .to_unicode(cmap_ref);
        let mut font = self.pdf.cid_font(cid);
        font.subtype(CidFontType::Type2)
            .base_font(name)
            .system_info(info)
            .font_descriptor(descriptor)
            .default_width(600.0)
            .cid_to_gid_map_predefined(Name(b"Identity"));
        let mut widths = font.widths();
        for (gid, (_, adv)) in &self.glyphs {
            widths.consecutive(*gid, [scale(f32::from(*adv))]);
        }
        widths.finish();
        font.finish();
        let bbox = self.face.global_bounding_box();
        self.pdf
            .font_descriptor(descriptor)
            .name(name)
            .flags(FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(
                scale(f32::from(bbox.x_min)),
                scale(f32::from(bbox.y_min)),
                scale(f32::from(bbox.x_max)),
                scale(f32::from(bbox.y_max)),
            ))
            .italic_angle(0.0)
            .ascent(scale(f32::from(self.face.ascender())))
            .descent(scale(f32::from(self.face.descender())))
            .cap_height(scale(f32::from(self.face.capital_height().unwrap_or(700))))
            .stem_v(80.0)
            .font_file2(file);
        let mut cmap = UnicodeCmap::new(Name(b"Custom"), info);
        for (gid, (c, _)) in &self.glyphs {
            cmap.pair(*gid, *c);
        }
        let cmap = cmap.finish();
        self.pdf.cmap(cmap_ref, cmap.as_slice());
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(FONT, 6);
        self.pdf
            .stream(file, &packed)
            .filter(Filter::FlateDecode)
            .pair(
                Name(b"Length1"),
                i32::try_from(FONT.len()).unwrap_or(i32::MAX),
            );
        self.pdf.finish()
    }
}
