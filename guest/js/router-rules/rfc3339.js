// A strict RFC 3339 timestamp parser for configuration values:
// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. `Date.parse` accepts far more
// (no time zone, impossible days rolled over), so it is not used.

const SHAPE = 'expected YYYY-MM-DDTHH:MM:SS, an optional fraction, then Z or an offset such as +01:00';
const FORM = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d*)?(.*)$/;

function daysInMonth(year, month) {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Milliseconds since the Unix epoch for the timestamp `s`; throws a string
 * saying what is wrong with it. Digits of the fraction beyond milliseconds
 * are dropped; a leap second (`:60`) is refused.
 */
export function parseMs(s) {
  const m = FORM.exec(s);
  if (!m) throw SHAPE;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12) throw 'the month must be 01-12';
  if (day < 1 || day > daysInMonth(year, month)) throw 'the day does not exist in that month';
  if (hour > 23 || minute > 59) throw 'the time of day must be 00:00-23:59';
  if (second > 59) throw 'the seconds must be 00-59';
  let millis = 0;
  if (m[7] !== undefined) {
    if (m[7].length === 1) throw 'a decimal point must be followed by digits';
    millis = Number(m[7].slice(1, 4).padEnd(3, '0'));
  }
  let offset;
  const zone = m[8];
  if (zone === 'Z' || zone === 'z') {
    offset = 0;
  } else if (zone === '') {
    throw 'the time zone is missing: end with Z or an offset such as +01:00';
  } else {
    const o = /^([+-])(\d{2}):(\d{2})$/.exec(zone);
    if (!o) throw SHAPE;
    const [hours, minutes] = [Number(o[2]), Number(o[3])];
    if (hours > 23 || minutes > 59) throw 'the offset must be between -23:59 and +23:59';
    offset = (hours * 60 + minutes) * (o[1] === '-' ? -1 : 1);
  }
  // Date.UTC maps years 0-99 to 1900-1999: set the year separately.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis));
  date.setUTCFullYear(year);
  return date.getTime() - offset * 60_000;
}
