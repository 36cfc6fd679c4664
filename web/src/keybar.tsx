// The key bar a phone needs to drive an agent TUI: the keys a soft keyboard lacks (Esc, Tab,
// Shift+Tab, arrows, PgUp/PgDn, Ctrl-C), sticky Ctrl and Alt (tap once for the next key, twice
// to lock, again to release), Paste through the Clipboard API (bracketed when the app asked for
// it) and a Copy view whose text the phone's own long-press selection works on. It sits above
// the soft keyboard by following the visual viewport.
//
// Which keys show is each operator's choice, kept by the daemon (`/api/v1/me/keybar`) so it
// follows them to every device; this browser's localStorage keeps a copy, so the bar shows at
// once and offline, before the daemon answers.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { BarKey } from './api.gen';
import { useApi } from './context';

export type KeyId = BarKey;

export const KEY_LABELS: Record<KeyId, [label: string, title: string]> = {
  esc: ['Esc', 'Escape'],
  tab: ['Tab', 'Tab'],
  stab: ['⇧Tab', 'Shift+Tab'],
  ctrl: ['Ctrl', 'Ctrl for the next key; tap twice to lock'],
  alt: ['Alt', 'Alt for the next key; tap twice to lock'],
  left: ['←', 'Left'],
  up: ['↑', 'Up'],
  down: ['↓', 'Down'],
  right: ['→', 'Right'],
  pgup: ['PgUp', 'Page up'],
  pgdn: ['PgDn', 'Page down'],
  ctrlc: ['^C', 'Ctrl-C'],
  paste: ['Paste', 'Paste from the clipboard'],
  copy: ['Copy', 'Show the screen as text to select and copy'],
};

export const ALL_KEYS = Object.keys(KEY_LABELS) as KeyId[];

const SEQ: Partial<Record<KeyId, string>> = {
  esc: '\x1b',
  tab: '\t',
  stab: '\x1b[Z',
  left: '\x1b[D',
  up: '\x1b[A',
  down: '\x1b[B',
  right: '\x1b[C',
  pgup: '\x1b[5~',
  pgdn: '\x1b[6~',
  ctrlc: '\x03',
};

const STORE_KEY = 'kaged-keybar';

/** The operator's keys as this browser last saw them, in bar order. */
export function loadKeys(): KeyId[] {
  try {
    const raw = JSON.parse(localStorage.getItem(STORE_KEY) ?? 'null') as unknown;
    if (Array.isArray(raw)) return ALL_KEYS.filter((k) => raw.includes(k));
  } catch {
    // Storage disabled or garbage: the default.
  }
  return ALL_KEYS;
}

/** The operator's keys: this browser's copy at once, then the daemon's, kept as the copy. */
export function useKeys(): [KeyId[], (keys: KeyId[]) => void] {
  const api = useApi();
  const [keys, setKeys] = useState<KeyId[]>(loadKeys);
  useEffect(() => {
    api.keybar().then(
      (c) => {
        saveKeys(c.keys);
        setKeys(ALL_KEYS.filter((k) => c.keys.includes(k)));
      },
      // Offline or refused: the copy stands.
      () => {},
    );
  }, [api]);
  return [keys, setKeys];
}

export function saveKeys(keys: KeyId[]) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(keys));
  } catch {
    // Storage disabled: the choice lasts until reload.
  }
}

/** Applies Ctrl and Alt to what one key produced, as xterm encodes them. */
export function withModifiers(data: string, ctrl: boolean, alt: boolean): string {
  if ((!ctrl && !alt) || data === '') return data;
  // Cursor and paging keys take the modifier as a CSI parameter: `ESC [ 1 ; 5 A`.
  const mod = 1 + (alt ? 2 : 0) + (ctrl ? 4 : 0);
  const arrow = /^\x1b\[([A-D])$/.exec(data);
  if (arrow) return `\x1b[1;${mod}${arrow[1]}`;
  const tilde = /^\x1b\[(\d+)~$/.exec(data);
  if (tilde) return `\x1b[${tilde[1]};${mod}~`;
  let first = data[0];
  const rest = data.slice(1);
  if (ctrl) {
    const c = first.toUpperCase().charCodeAt(0);
    if (c >= 0x40 && c <= 0x5f) first = String.fromCharCode(c - 0x40);
    else if (first === ' ') first = '\x00';
    else if (first === '?') first = '\x7f';
  }
  return (alt ? '\x1b' : '') + first + rest;
}

export type Sticky = 'off' | 'once' | 'locked';
const next = (s: Sticky): Sticky => (s === 'off' ? 'once' : s === 'once' ? 'locked' : 'off');

/** What the bar needs from the terminal. */
export interface KeyTarget {
  /** Types raw bytes (no modifiers applied). */
  send(data: string): void;
  /** Pastes like xterm does: bracketed when the app enabled mode 2004. */
  paste(text: string): void;
  /** Every keystroke the terminal produces goes through this filter first. */
  setInputFilter(f: ((data: string) => string) | null): void;
  /** The selection, or else the screen and recent history, as text. */
  text(): string;
}

/** Sizes the terminal page to the visual viewport, so with the soft keyboard open the page
 *  ends at the keyboard's top edge and the bar sits right above it (and the terminal refits). */
function useAboveKeyboard() {
  useEffect(() => {
    const vv = window.visualViewport;
    if (!vv) return;
    const root = document.documentElement.style;
    const place = () => {
      root.setProperty('--vvh', `${vv.height}px`);
    };
    place();
    vv.addEventListener('resize', place);
    vv.addEventListener('scroll', place);
    return () => {
      vv.removeEventListener('resize', place);
      vv.removeEventListener('scroll', place);
      root.removeProperty('--vvh');
    };
  }, []);
}

/** The screen as plain text: the phone's own long-press selection and copy menu work here. */
function CopyView({ text, onClose }: { text: string; onClose: () => void }) {
  return (
    <div class="copy-view" id="copy-view">
      <pre tabIndex={0}>{text}</pre>
      <div class="copy-actions">
        <button class="btn small" onClick={() => void navigator.clipboard.writeText(text).then(onClose, () => {})}>
          Copy all
        </button>
        <button class="btn small" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}

export function KeyBar({ target }: { target: KeyTarget }) {
  const [keys] = useKeys();
  const [ctrl, setCtrl] = useState<Sticky>('off');
  const [alt, setAlt] = useState<Sticky>('off');
  const [copyText, setCopyText] = useState<string | null>(null);
  const [note, setNote] = useState('');
  const mods = useRef({ ctrl, alt });
  mods.current = { ctrl, alt };
  useAboveKeyboard();

  /** Applies the armed modifiers to one key's bytes and releases the one-shot ones. */
  const modify = (data: string) => {
    const m = mods.current;
    const out = withModifiers(data, m.ctrl !== 'off', m.alt !== 'off');
    if (m.ctrl === 'once') setCtrl('off');
    if (m.alt === 'once') setAlt('off');
    mods.current = { ctrl: m.ctrl === 'once' ? 'off' : m.ctrl, alt: m.alt === 'once' ? 'off' : m.alt };
    return out;
  };
  useEffect(() => {
    target.setInputFilter(modify);
    return () => target.setInputFilter(null);
  }, [target]);

  const paste = async () => {
    try {
      const text = await navigator.clipboard.readText();
      if (text) target.paste(text);
      setNote('');
    } catch (e) {
      setNote(`Paste needs clipboard permission: ${(e as Error).message}`);
    }
  };
  const press = (k: KeyId) => {
    switch (k) {
      case 'ctrl':
        return setCtrl(next);
      case 'alt':
        return setAlt(next);
      case 'paste':
        return void paste();
      case 'copy':
        return setCopyText((t) => (t === null ? target.text() : null));
      default: {
        const seq = SEQ[k];
        if (seq) target.send(modify(seq));
      }
    }
  };
  const sticky = (k: KeyId) => (k === 'ctrl' ? ctrl : k === 'alt' ? alt : null);

  return (
    <div class="keybar-wrap">
      {copyText !== null && <CopyView text={copyText} onClose={() => setCopyText(null)} />}
      {note && (
        <div class="error" role="alert">
          {note}
        </div>
      )}
      <div class="keybar" role="toolbar" aria-label="Extra keys" id="keybar">
        {keys.map((k) => {
          const s = sticky(k);
          return (
            // preventDefault on mousedown keeps the focus (and a phone's keyboard) in the
            // terminal.
            <button
              key={k}
              class={`btn small${s && s !== 'off' ? ` sticky-${s}` : ''}`}
              data-key={k}
              title={KEY_LABELS[k][1]}
              aria-pressed={s ? s !== 'off' : undefined}
              tabIndex={-1}
              onMouseDown={(e) => e.preventDefault()}
              onClick={() => press(k)}
            >
              {KEY_LABELS[k][0]}
              {s === 'locked' ? ' 🔒' : ''}
            </button>
          );
        })}
      </div>
    </div>
  );
}
