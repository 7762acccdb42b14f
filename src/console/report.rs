//! The ticket journal as a PDF report a supervisory body accepts: the company's
//! name and the period on every page, one line per ticket with its registration
//! number, times (registered, deadline, accepted, done, closed) and outcome, pages
//! numbered. Text is set in DejaVu Sans (a free font with Cyrillic, committed under
//! `assets/fonts/` with its licence), embedded whole as a CID font with a
//! `ToUnicode` map so the text can be searched and extracted.
//!
//! Pure and streamed: tickets go in one at a time (the caller reads them in
//! batches); each page is compressed and written out as soon as it is full, and
//! [`TicketReport::take_output`] hands over the bytes written so far, so the caller
//! sends them on while the next batch is read. Each PDF object is written on its
//! own and its byte offset kept for the cross-reference table, which
//! [`TicketReport::finish`] writes last with the page tree and the font. Memory is
//! one page, the glyphs used, and two numbers per page.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Chunk, Content, Filter, Finish, Name, Rect, Ref, Str};

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
    /// Bytes written and not yet taken.
    out: Vec<u8>,
    /// Bytes taken before `out`.
    taken: u64,
    /// Each object's id and byte offset in the file.
    offsets: Vec<(i32, u64)>,
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
            // The header, with a comment of high bytes marking the file binary.
            out: b"%PDF-1.7\n%\x80\x80\x80\x80\n".to_vec(),
            taken: 0,
            offsets: Vec::new(),
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

    /// Appends one object (a chunk holding exactly one) and notes its offset.
    fn emit(&mut self, chunk: &Chunk) {
        let at = self.taken + self.out.len() as u64;
        if let Some(id) = chunk.refs().next() {
            self.offsets.push((id.get(), at));
        }
        self.out.extend_from_slice(chunk.as_bytes());
    }

    /// The bytes written since the last call: send them on.
    pub fn take_output(&mut self) -> Vec<u8> {
        let out = std::mem::take(&mut self.out);
        self.taken += out.len() as u64;
        out
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
        let mut chunk = Chunk::new();
        chunk.stream(stream, &packed).filter(Filter::FlateDecode);
        self.emit(&chunk);
        let mut chunk = Chunk::new();
        let mut p = chunk.page(page);
        p.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        p.parent(Ref::new(1));
        p.contents(stream);
        p.resources().fonts().pair(Name(b"F1"), self.font_ref);
        p.finish();
        self.emit(&chunk);
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

    /// The rest of the file (all of it if [`take_output`](Self::take_output) was
    /// never called): the last page, the page tree, the font (with the widths and
    /// the `ToUnicode` map of every glyph used), the catalog, the cross-reference
    /// table and the trailer.
    pub fn finish(mut self, total_line: &str) -> Vec<u8> {
        let y = (self.y - LINE).max(MARGIN - LINE);
        self.text(MARGIN, y, 8.0, 400.0, total_line);
        self.end_page();
        let catalog = self.alloc();
        let cid = self.alloc();
        let descriptor = self.alloc();
        let cmap_ref = self.alloc();
        let file = self.alloc();
        let mut chunk = Chunk::new();
        chunk
            .indirect(catalog)
            .dict()
            .pair(Name(b"Type"), Name(b"Catalog"))
            .pair(Name(b"Pages"), Ref::new(1));
        self.emit(&chunk);
        let count = i32::try_from(self.pages.len()).unwrap_or(i32::MAX);
        let mut chunk = Chunk::new();
        chunk
            .pages(Ref::new(1))
            .kids(self.pages.iter().copied())
            .count(count);
        self.emit(&chunk);
        let units = f32::from(self.face.units_per_em());
        let scale = |v: f32| v * 1000.0 / units;
        let name = Name(b"DejaVuSans");
        let info = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        let mut chunk = Chunk::new();
        chunk
            .type0_font(self.font_ref)
            .base_font(name)
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid)
            .to_unicode(cmap_ref);
        self.emit(&chunk);
        let mut chunk = Chunk::new();
        let mut font = chunk.cid_font(cid);
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
        self.emit(&chunk);
        let bbox = self.face.global_bounding_box();
        let mut chunk = Chunk::new();
        chunk
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
        self.emit(&chunk);
        let mut cmap = UnicodeCmap::new(Name(b"Custom"), info);
        for (gid, (c, _)) in &self.glyphs {
            cmap.pair(*gid, *c);
        }
        let cmap = cmap.finish();
        let mut chunk = Chunk::new();
        chunk.cmap(cmap_ref, cmap.as_slice());
        self.emit(&chunk);
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(FONT, 6);
        let mut chunk = Chunk::new();
        chunk
            .stream(file, &packed)
            .filter(Filter::FlateDecode)
            .pair(
                Name(b"Length1"),
                i32::try_from(FONT.len()).unwrap_or(i32::MAX),
            );
        self.emit(&chunk);
        drop(chunk);
        self.write_xref(catalog);
        self.out
    }

    /// The cross-reference table (every id from 1 to the last one allocated; each
    /// was written once) and the trailer.
    fn write_xref(&mut self, catalog: Ref) {
        let start = self.taken + self.out.len() as u64;
        let size = self.next_ref + 1;
        let mut at: Vec<Option<u64>> = vec![None; usize::try_from(size).unwrap_or(0)];
        for (id, offset) in &self.offsets {
            if let Some(slot) = usize::try_from(*id).ok().and_then(|i| at.get_mut(i)) {
                *slot = Some(*offset);
            }
        }
        let mut xref = format!("xref\n0 {size}\n0000000000 65535 f\r\n");
        for offset in at.iter().skip(1) {
            match offset {
                Some(o) => xref.push_str(&format!("{o:010} 00000 n\r\n")),
                None => xref.push_str("0000000000 65535 f\r\n"),
            }
        }
        xref.push_str(&format!(
            "trailer\n<<\n  /Size {size}\n  /Root {} 0 R\n>>\nstartxref\n{start}\n%%EOF",
            catalog.get()
        ));
        self.out.extend_from_slice(xref.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).rposition(|w| w == needle)
    }

    #[test]
    fn streamed_pieces_make_one_file_whose_xref_points_at_every_object() {
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let zone = chrono_tz::Asia::Yekaterinburg;
        let mut report =
            TicketReport::new("УК «Эталон»", from, from + chrono::Duration::days(30), zone)
                .unwrap();
        let mut file = report.take_output();
        assert!(file.starts_with(b"%PDF-1.7\n"));
        for _ in 0..3 {
            report.end_page();
            report.start_page();
            let piece = report.take_output();
            assert!(!piece.is_empty(), "a finished page is handed over at once");
            file.extend(piece);
        }
        file.extend(report.finish("Всего заявок: 0"));

        let at = find(&file, b"startxref\n").unwrap() + b"startxref\n".len();
        let end = at + file[at..].iter().position(|b| *b == b'\n').unwrap();
        let xref: usize = std::str::from_utf8(&file[at..end])
            .unwrap()
            .parse()
            .unwrap();
        let table = &file[xref..];
        assert!(table.starts_with(b"xref\n0 "));
        let head_end = table.iter().skip(5).position(|b| *b == b'\n').unwrap() + 5;
        let size: usize = std::str::from_utf8(&table[7..head_end])
            .unwrap()
            .parse()
            .unwrap();
        let entries = &table[head_end + 1..];
        for id in 1..size {
            let entry = &entries[id * 20..id * 20 + 20];
            assert_eq!(&entry[17..18], b"n", "object {id} was written");
            let offset: usize = std::str::from_utf8(&entry[..10]).unwrap().parse().unwrap();
            assert!(
                file[offset..].starts_with(format!("{id} 0 obj").as_bytes()),
                "object {id} is where the table says"
            );
        }
        assert!(find(&file, b"/Count 4").is_some(), "four pages");
        assert!(file.ends_with(b"%%EOF"));
    }
}
