/*
 * dvc-assistant — embeddable chat widget.
 * Plain ES2020 in one file: no build step, no dependencies, no eval, no inline styles.
 *
 * A site embeds the assistant with ONE tag:
 *
 *   <script src="https://GATEWAY/widget.js" data-title="Trợ lý dịch vụ công" defer></script>
 *
 * Options (data-* attributes on that script tag, all optional):
 *   data-gateway      Base URL of the gateway ("https://tro-ly.example.gov.vn", a path prefix
 *                     is kept). Default: the origin of this script's own src.
 *   data-title        Panel title. Default "Trợ lý dịch vụ công".
 *   data-subtitle     Line under the title ("" hides it).
 *                     Default "Hỏi về hồ sơ, lệ phí, thời gian và cách nộp thủ tục".
 *   data-color        Theme colour: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(…) or rgba(…).
 *                     Anything else is ignored (console.warn). Text drawn on the colour is
 *                     white or dark, whichever contrasts more.
 *   data-position     "right" (default) or "left": the bottom corner of the launcher.
 *   data-open         "true" (or the bare attribute) starts with the panel open. Focus is
 *                     not moved on page load, so keyboard users stay where they are.
 *   data-greeting     First bot bubble, shown locally (never sent to the server) when the
 *                     conversation is empty ("" = no greeting).
 *                     Default "Xin chào! Mình có thể giúp bạn tra cứu thủ tục hành chính: …".
 *   data-placeholder  Input placeholder. Default "Nhập câu hỏi của bạn…".
 *   data-strings      JSON object overriding any visible string by key (keys below). Invalid
 *                     JSON, unknown keys and non-string values are ignored (console.warn).
 *   Precedence: built-in default < data-strings < the dedicated attribute above.
 *
 * String keys (data-strings):
 *   title, subtitle, greeting, placeholder, launcher ("Mở trợ lý"), close ("Đóng"),
 *   send ("Gửi"), newConversation ("Cuộc trò chuyện mới"), typing ("Trợ lý đang trả lời…"),
 *   offline ("Mất kết nối, đang thử lại…"), feedbackUp ("Câu trả lời hữu ích"),
 *   feedbackDown ("Câu trả lời chưa đúng"), feedbackGroup ("Đánh giá câu trả lời"),
 *   thanks ("Cảm ơn bạn đã góp ý"), error (shown when the gateway cannot be reached),
 *   noAnswer (shown when a reply has no text), unread ("tin nhắn mới", after the badge
 *   count), announcePrefix ("Trợ lý:", screen-reader prefix of bot messages), userLabel
 *   ("Bạn:"), inputLabel ("Câu hỏi"), messagesLabel ("Cuộc trò chuyện"),
 *   suggestions ("Gợi ý trả lời", label of a quick-reply group),
 *   staffLabel ("Cán bộ hỗ trợ", shown above a staff member's messages),
 *   handoverWaiting, handoverHeld, handoverAfterHours (the bar shown while a person handles
 *   the conversation), backToBot ("Quay lại trợ lý ảo", the button that ends it).
 *
 * Page API (the only global): window.DVCWidget.open(), .close(), .reset()
 *
 * Protocol (all URLs relative to the gateway base):
 *   WebSocket  /api/v1/ws?session=<id>
 *     → {"type":"message","id":"<client msg id>","text":"…"}
 *     ← {"type":"typing","on":true|false}
 *     ← {"type":"reply","reply_to":"<client msg id>","messages":[{"id","text","buttons":[{"title","payload"}],"ts"}]}
 *     ← {"type":"error","reply_to":"<id>|null","code":"…","message":"<Vietnamese text>"}
 *     ← {"type":"handover","handover":{"status":"waiting"|"held","after_hours":bool}|null,
 *        "messages":[…]}  pushed when a staff member replies, takes or closes the conversation
 *   Human handover: while a person handles the conversation, "reply" frames and REST replies
 *   carry "handover":{…} and no bot answer (messages: only staff notes, often none). Staff
 *   messages carry "author":"agent"|"system" and "seq" (a cursor), and are shown labelled.
 *     GET /api/v1/messages?session=<id>&after=<seq> → {"messages":[…],"handover":{…}|null}:
 *       what the socket missed; asked when the socket opens, and every 5 s while a person
 *       handles the conversation and the socket is down.
 *     POST /api/v1/handover/cancel {"session"}: back to the assistant.
 *   REST fallback, used only while the socket is not open (a message goes one way, never both):
 *     POST /api/v1/chat {"sender":"<id>","text":"…","metadata":{"channel":"widget"}}
 *       → {"messages":[…]}; on HTTP errors {"error":{"code","message"}} (+ maybe "messages")
 *   POST /api/v1/feedback {"session","message_id","rating":"up"|"down","text"} (failures silent)
 *
 * Storage: localStorage "dvc-widget:session" (anonymous id), "dvc-widget:history:<id>"
 * (last 200 rendered messages) and "dvc-widget:cursor:<id>" (last staff message seen); kept
 * in memory when localStorage is unavailable.
 *
 * Host-page safety: everything lives in an open shadow root on <div id="dvc-widget-root">;
 * the CSS comes from GATEWAY/widget.css through a <link> inside that root (allowed by a CSP
 * with style-src GATEWAY). The only style set from script is the theme colour, through a
 * constructed stylesheet (adoptedStyleSheets); if that is unavailable the default colour stays.
 */
(() => {
  "use strict";

  // Must be read now: document.currentScript is null once this first run returns.
  const SCRIPT = document.currentScript || document.querySelector('script[src*="widget.js"]');

  const ROOT_ID = "dvc-widget-root";
  const PANEL_ID = "dvc-panel";
  const TITLE_ID = "dvc-title";
  const SUBTITLE_ID = "dvc-subtitle";
  const INPUT_ID = "dvc-input";

  const SESSION_KEY = "dvc-widget:session";
  const HISTORY_PREFIX = "dvc-widget:history:";
  const CURSOR_PREFIX = "dvc-widget:cursor:";
  // What the gateway accepts as a session / message id (bot/gateway/widget.py SESSION_RE).
  const ID_RE = /^[A-Za-z0-9_-]{8,64}$/;

  const MAX_HISTORY = 200;
  const MAX_INPUT_CHARS = 1000; // ~3 KB of Vietnamese UTF-8, under the gateway's 4 KB limit
  const MAX_INPUT_ROWS = 5;
  const MAX_FEEDBACK_CHARS = 2000;
  const MAX_BUTTONS = 12;
  const MAX_BUTTON_TITLE = 200;
  const REPLY_TIMEOUT_MS = 45000; // the gateway itself gives Rasa 30 s
  const SERVER_TYPING_MAX_MS = 60000; // a lost "typing off" frame must not spin forever
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const THANKS_MS = 4000;
  const DOUBLE_CLICK_MS = 800;
  const HANDOVER_POLL_MS = 5000; // staff replies while the socket is down
  // Entry kinds of a staff member's message and of a note about the handover.
  const STAFF_KINDS = new Set(["agent", "system"]);

  const DEFAULT_STRINGS = Object.freeze({
    title: "Trợ lý dịch vụ công",
    subtitle: "Hỏi về hồ sơ, lệ phí, thời gian và cách nộp thủ tục",
    greeting:
      "Xin chào! Mình có thể giúp bạn tra cứu thủ tục hành chính: giấy tờ cần chuẩn bị, " +
      "lệ phí, thời gian, nơi nộp.",
    placeholder: "Nhập câu hỏi của bạn…",
    launcher: "Mở trợ lý",
    close: "Đóng",
    send: "Gửi",
    newConversation: "Cuộc trò chuyện mới",
    typing: "Trợ lý đang trả lời…",
    offline: "Mất kết nối, đang thử lại…",
    feedbackUp: "Câu trả lời hữu ích",
    feedbackDown: "Câu trả lời chưa đúng",
    feedbackGroup: "Đánh giá câu trả lời",
    thanks: "Cảm ơn bạn đã góp ý",
    error:
      "Xin lỗi, hiện không kết nối được tới trợ lý. Bạn vui lòng kiểm tra mạng và thử lại " +
      "sau ít phút.",
    noAnswer: "Xin lỗi, mình chưa có câu trả lời cho câu hỏi này. Bạn thử hỏi cách khác nhé.",
    unread: "tin nhắn mới",
    announcePrefix: "Trợ lý:",
    userLabel: "Bạn:",
    inputLabel: "Câu hỏi",
    messagesLabel: "Cuộc trò chuyện",
    suggestions: "Gợi ý trả lời",
    staffLabel: "Cán bộ hỗ trợ",
    handoverWaiting: "Đang chờ cán bộ hỗ trợ…",
    handoverHeld: "Cán bộ hỗ trợ đang trò chuyện với bạn",
    handoverAfterHours: "Ngoài giờ làm việc: cán bộ sẽ đọc lời nhắn của bạn và trả lời sau",
    backToBot: "Quay lại trợ lý ảo",
  });
  // Strings that may be set to "" on purpose (hide the subtitle, no greeting); an empty
  // label anywhere else would leave a control without a name, so the default is kept.
  const MAY_BE_EMPTY = new Set(["subtitle", "greeting", "placeholder"]);

  const warn = (...args) => console.warn("[dvc-widget]", ...args);

  // ------------------------------------------------------------------ pure helpers

  /** Random id: a UUID where available (secure contexts), else 32 hex characters. */
  function randomId() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    const bytes = new Uint8Array(16);
    c.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** {r, g, b} of a #hex or rgb()/rgba() colour, or null. The strict shape also keeps
   *  anything like "red;}" out of the constructed stylesheet. */
  function parseColor(value) {
    const v = String(value == null ? "" : value).trim();
    const hex = /^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.exec(v);
    if (hex) {
      let h = hex[1];
      if (h.length <= 4) h = Array.from(h, (ch) => ch + ch).join("");
      return { r: parseInt(h.slice(0, 2), 16), g: parseInt(h.slice(2, 4), 16), b: parseInt(h.slice(4, 6), 16) };
    }
    const fn = /^rgba?\(([0-9.%\s,/]+)\)$/i.exec(v);
    if (!fn) return null;
    const parts = fn[1].trim().split(/\s*[,/]\s*|\s+/);
    if (parts.length < 3 || parts.length > 4) return null;
    const nums = parts.map((p) => {
      const pct = p.endsWith("%");
      const n = pct ? Number(p.slice(0, -1)) : Number(p);
      return p === "" || p === "%" || !Number.isFinite(n) ? NaN : { n, pct };
    });
    if (nums.some((x) => Number.isNaN(x))) return null;
    const [r, g, b] = nums.slice(0, 3).map(({ n, pct }) => Math.min(255, Math.max(0, pct ? n * 2.55 : n)));
    return { r, g, b };
  }

  /** WCAG relative luminance and contrast ratio. */
  function luminance({ r, g, b }) {
    const lin = (c) => {
      const s = c / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  }
  function contrast(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }

  const WHITE = { r: 255, g: 255, b: 255 };
  const INK = { r: 29, g: 36, b: 48 }; // #1d2430, the text colour of widget.css

  /** The theme rule for a valid colour, or null. Besides the colour it picks the text
   *  colour drawn on it and the colour used for text on white (links, chips): a light
   *  theme such as #ffd400 must not make the send button or the chips unreadable. */
  function themeCss(value) {
    const rgb = parseColor(value);
    if (!rgb) return null;
    const color = String(value).trim();
    const onWhite = contrast(rgb, WHITE);
    const on = onWhite >= contrast(rgb, INK) ? "#ffffff" : "#1d2430";
    const text = onWhite >= 4.5 ? color : "#1d2430";
    return `:host { --dvc-color: ${color}; --dvc-on-color: ${on}; --dvc-color-text: ${text}; }`;
  }

  /** Reconnect delay after `failures` consecutive failures: 1 s, 2 s, 4 s … 30 s, ±20 %
   *  so that every open page does not reconnect in the same second after a restart. */
  function backoffDelay(failures, random = Math.random) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
    return Math.min(BACKOFF_MAX_MS, Math.round(base * (0.8 + 0.4 * random())));
  }

  /** A Date for a server timestamp; now when missing or unreadable. */
  function toDate(ts) {
    const d = ts ? new Date(ts) : new Date();
    return Number.isNaN(d.getTime()) ? new Date() : d;
  }
  const pad2 = (n) => String(n).padStart(2, "0");
  const clock = (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;

  /** First `max` characters, counted in code points like the gateway (Python) does. */
  function truncate(text, max) {
    const chars = Array.from(text);
    return chars.length > max ? chars.slice(0, max).join("") : text;
  }

  const cleanId = (id) => {
    const s = typeof id === "number" ? String(id) : id;
    return typeof s === "string" && ID_RE.test(s) ? s : null;
  };

  /** Quick replies as {title, payload} strings; anything malformed is dropped. */
  function cleanButtons(buttons) {
    if (!Array.isArray(buttons)) return [];
    const out = [];
    for (const b of buttons) {
      if (!b || typeof b !== "object") continue;
      const title = typeof b.title === "string" ? b.title.trim() : "";
      const payload = typeof b.payload === "string" ? b.payload.trim() : "";
      if (!title && !payload) continue;
      out.push({ title: truncate(title || payload, MAX_BUTTON_TITLE), payload: payload || title });
      if (out.length === MAX_BUTTONS) break;
    }
    return out;
  }

  // --- safe rendering of bot text: DOM nodes only, never HTML parsing ---------------

  // "• ", "- ", "1. " or "1) " at the start of a line (1–3 digits: "2024. Năm…" is not a list).
  const LIST_ITEM_RE = /^\s*(?:([•-])|(\d{1,3})[.)])\s+(\S.*)$/;
  const BOLD_RE = /\*\*(?=\S)([\s\S]*?\S)\*\*/g;
  const URL_RE = /https?:\/\/[^\s<>"'`]+/gi;

  function matchListItem(line) {
    const m = LIST_ITEM_RE.exec(line);
    if (!m) return null;
    return m[1] ? { ordered: false, text: m[3] } : { ordered: true, start: Number(m[2]), text: m[3] };
  }

  /** A URL as written in prose, without the sentence's closing punctuation or an
   *  unbalanced closing bracket: "(xem https://a.vn/x)." links "https://a.vn/x". */
  function trimUrl(raw) {
    let url = raw;
    for (;;) {
      const before = url;
      url = url.replace(/[.,;:!?…]+$/, "");
      const close = url.slice(-1);
      const open = { ")": "(", "]": "[", "}": "{" }[close];
      if (open && url.split(close).length > url.split(open).length) url = url.slice(0, -1);
      if (url === before) return url;
    }
  }

  function safeHttpUrl(text) {
    try {
      const u = new URL(text);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  /** Text with http(s) URLs turned into links that open in a new tab. */
  function appendLinks(doc, parent, text) {
    let last = 0;
    for (const m of text.matchAll(URL_RE)) {
      const shown = trimUrl(m[0]);
      const href = safeHttpUrl(shown);
      if (!href) continue;
      if (m.index > last) parent.appendChild(doc.createTextNode(text.slice(last, m.index)));
      const a = doc.createElement("a");
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = shown;
      parent.appendChild(a);
      last = m.index + shown.length;
    }
    if (last < text.length) parent.appendChild(doc.createTextNode(text.slice(last)));
  }

  /** One line of text with **bold** spans and links. */
  function appendInline(doc, parent, text) {
    let last = 0;
    for (const m of text.matchAll(BOLD_RE)) {
      appendLinks(doc, parent, text.slice(last, m.index));
      const strong = doc.createElement("strong");
      appendLinks(doc, strong, m[1]);
      parent.appendChild(strong);
      last = m.index + m[0].length;
    }
    appendLinks(doc, parent, text.slice(last));
  }

  /** Bot text → a fragment of <p> (lines joined by <br>, blank line = new paragraph) and
   *  <ul>/<ol> for list lines. Every piece of text goes through createTextNode, so a
   *  message such as `<img src=x onerror=…>` stays literal text. */
  function renderRichText(doc, text) {
    const frag = doc.createDocumentFragment();
    let para = null;
    let list = null;
    for (const rawLine of String(text).split(/\r\n|\r|\n/)) {
      const line = rawLine.replace(/\s+$/, "");
      const item = matchListItem(line);
      if (item) {
        para = null;
        const tag = item.ordered ? "ol" : "ul";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = doc.createElement(tag);
          list.className = "msg__list";
          if (item.ordered && item.start !== 1) list.setAttribute("start", String(item.start));
          frag.appendChild(list);
        }
        const li = doc.createElement("li");
        appendInline(doc, li, item.text);
        list.appendChild(li);
        continue;
      }
      list = null;
      if (!line.trim()) {
        para = null;
        continue;
      }
      if (para) {
        para.appendChild(doc.createElement("br"));
      } else {
        para = doc.createElement("p");
        para.className = "msg__p";
        frag.appendChild(para);
      }
      appendInline(doc, para, line);
    }
    return frag;
  }

  /** Bot text as a screen reader should hear it (no markdown markers). */
  const plainText = (text) => String(text).replace(/\*\*/g, "").replace(/\s+/g, " ").trim();

  // ------------------------------------------------------------------ configuration

  function parseStrings(raw) {
    const out = {};
    if (raw == null || raw.trim() === "") return out;
    let data;
    try {
      data = JSON.parse(raw);
    } catch (e) {
      warn("data-strings is not valid JSON; ignored", e);
      return out;
    }
    if (!data || typeof data !== "object" || Array.isArray(data)) {
      warn("data-strings must be a JSON object; ignored");
      return out;
    }
    for (const [key, value] of Object.entries(data)) {
      if (!Object.prototype.hasOwnProperty.call(DEFAULT_STRINGS, key)) warn(`unknown string key "${key}" ignored`);
      else if (typeof value !== "string") warn(`string "${key}" must be a string; ignored`);
      else out[key] = value;
    }
    return out;
  }

  function gatewayBase(value, script) {
    let fallback = window.location.origin;
    try {
      if (script && script.src) fallback = new URL(script.src, document.baseURI).origin;
    } catch (e) {
      /* keep the page origin */
    }
    if (value == null || value.trim() === "") return fallback;
    try {
      const url = new URL(value.trim(), document.baseURI);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error(url.protocol);
      return (url.origin + url.pathname).replace(/\/+$/, "");
    } catch (e) {
      warn(`data-gateway "${value}" is not an http(s) URL; using ${fallback}`);
      return fallback;
    }
  }

  function readConfig(script) {
    const attr = (name) => (script && script.hasAttribute(`data-${name}`) ? script.getAttribute(`data-${name}`) : null);
    const strings = { ...DEFAULT_STRINGS, ...parseStrings(attr("strings")) };
    for (const key of ["title", "subtitle", "greeting", "placeholder"]) {
      const v = attr(key);
      if (v !== null) strings[key] = v;
    }
    for (const key of Object.keys(strings)) {
      strings[key] = strings[key].trim();
      if (!strings[key] && !MAY_BE_EMPTY.has(key)) strings[key] = DEFAULT_STRINGS[key];
    }

    let theme = null;
    const color = attr("color");
    if (color !== null && color.trim() !== "") {
      theme = themeCss(color);
      if (!theme) warn(`data-color "${color}" is not a #hex or rgb() colour; using the default`);
    }

    const position = (attr("position") || "right").trim().toLowerCase();
    if (position !== "right" && position !== "left") warn(`data-position "${position}" ignored`);
    const open = attr("open");

    const base = gatewayBase(attr("gateway"), script);
    let query = "";
    try {
      // widget.js?v=3 loads widget.css?v=3, so a cache-busting version covers both files.
      if (script && script.src) query = new URL(script.src, document.baseURI).search;
    } catch (e) {
      /* no query */
    }
    return {
      base,
      cssUrl: `${base}/widget.css${query}`,
      strings: Object.freeze(strings),
      theme,
      position: position === "left" ? "left" : "right",
      startOpen: open !== null && (open === "" || open.trim().toLowerCase() === "true"),
    };
  }

  // ------------------------------------------------------------------ storage

  /** localStorage with an in-memory copy: private mode, blocked storage or a full quota
   *  leave the widget working for the current page. */
  function createStore() {
    const memory = new Map();
    let local = null;
    try {
      local = window.localStorage;
      local.setItem("dvc-widget:probe", "1");
      local.removeItem("dvc-widget:probe");
    } catch (e) {
      local = null;
    }
    return {
      get(key) {
        if (memory.has(key)) return memory.get(key);
        if (!local) return null;
        try {
          return local.getItem(key);
        } catch (e) {
          return null;
        }
      },
      set(key, value) {
        memory.set(key, value);
        if (local) {
          try {
            local.setItem(key, value);
          } catch (e) {
            /* quota or blocked: the memory copy serves this page */
          }
        }
      },
      remove(key) {
        memory.delete(key);
        if (local) {
          try {
            local.removeItem(key);
          } catch (e) {
            /* nothing to do */
          }
        }
      },
      /** A value another tab wrote (storage event): refresh the memory copy only. */
      remember(key, value) {
        if (value === null) memory.delete(key);
        else memory.set(key, value);
      },
    };
  }

  function sanitizeEntry(e) {
    if (!e || typeof e !== "object" || (e.from !== "user" && e.from !== "bot") || typeof e.text !== "string") {
      return null;
    }
    const entry = {
      id: typeof e.id === "string" && e.id ? e.id.slice(0, 80) : `local-${randomId()}`,
      from: e.from,
      text: e.text,
      buttons: e.from === "bot" ? cleanButtons(e.buttons) : [],
      ts: toDate(e.ts).toISOString(),
      rating: e.rating === "up" || e.rating === "down" ? e.rating : null,
    };
    if (e.kind === "greeting" || e.kind === "error" || e.kind === "local" || STAFF_KINDS.has(e.kind)) {
      entry.kind = e.kind;
    }
    return entry;
  }

  function parseHistory(raw) {
    if (!raw) return [];
    let data;
    try {
      data = JSON.parse(raw);
    } catch (e) {
      return [];
    }
    return Array.isArray(data) ? data.map(sanitizeEntry).filter(Boolean).slice(-MAX_HISTORY) : [];
  }

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, className, attrs) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  // Our own line icons on a 24-unit grid, drawn with stroke="currentColor" so they follow
  // the text colour (presentation attributes are not inline styles for the CSP).
  const ICONS = {
    chat: [
      "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2h-9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
      "M7 9h10M7 13h6",
    ],
    close: ["M6 6l12 12M18 6L6 18"],
    restart: ["M20 12a8 8 0 1 1-2.34-5.66", "M20 4v5h-5"],
    thumbUp: [
      "M7 11v9H4a1 1 0 0 1-1-1v-7a1 1 0 0 1 1-1h3z",
      "M7 11l4-8a2.5 2.5 0 0 1 2.5 2.5V9h5.2a2 2 0 0 1 2 2.3l-1.2 7A2 2 0 0 1 17.5 20H7",
    ],
  };
  const SVG_NS = "http://www.w3.org/2000/svg";

  function icon(name, className, rotate) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "20");
    svg.setAttribute("height", "20");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", `icon ${className || ""}`.trim());
    const g = document.createElementNS(SVG_NS, "g");
    if (rotate) g.setAttribute("transform", "rotate(180 12 12)");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      g.appendChild(path);
    }
    svg.appendChild(g);
    return svg;
  }

  // ------------------------------------------------------------------ the widget

  function createWidget(config) {
    const S = config.strings;
    const store = createStore();
    const api = (path) => `${config.base}${path}`;
    const wsUrl = (id) => `${config.base.replace(/^http/, "ws")}/api/v1/ws?session=${encodeURIComponent(id)}`;

    // ---- state
    let session = loadSession();
    let history = parseHistory(store.get(HISTORY_PREFIX + session));
    const knownIds = new Set();
    let unread = 0;
    let lastSent = { payload: "", at: 0 };
    let focusWhenReady = false;
    let ready = false;

    // transport state
    let socket = null;
    let wanted = false; // a socket is opened only once the citizen uses the widget
    let suspended = false; // page in the back/forward cache
    let failures = 0; // consecutive socket failures (backoff, status line)
    let reconnectTimer = null;
    let restReachable = false; // last REST call got an HTTP answer: the socket alone is down
    const pendingWs = new Map(); // client message id → timeout
    const pendingRest = new Set();
    let serverTyping = false;
    let serverTypingTimer = null;
    // human handover: null, or {status: "waiting"|"held", after_hours}
    let handover = null;
    let cursor = loadCursor();
    let pollTimer = null;
    let pulling = false;

    // ---- DOM
    const host = el("div", null, { id: ROOT_ID, "data-position": config.position });
    const shadow = host.attachShadow({ mode: "open" });

    const link = el("link", null, { rel: "stylesheet", href: config.cssUrl });
    const root = el("div", "dvc", { lang: "vi" });
    root.hidden = true; // until widget.css has loaded: no flash of unstyled widget

    const launcherLabel = el("span", "visually-hidden");
    const badge = el("span", "badge", { "data-testid": "badge" });
    const badgeLabel = el("span", "visually-hidden");
    badge.hidden = true;
    badgeLabel.hidden = true;
    const launcher = el("button", "launcher", {
      type: "button",
      "aria-expanded": "false",
      "aria-controls": PANEL_ID,
      "data-testid": "launcher",
    });
    launcher.append(
      icon("chat", "launcher__icon launcher__icon--chat"),
      icon("close", "launcher__icon launcher__icon--close"),
      launcherLabel,
      badge,
      badgeLabel,
    );

    const panel = el("div", "panel", {
      id: PANEL_ID,
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": TITLE_ID,
      lang: "vi",
      "data-testid": "panel",
    });
    panel.hidden = true;

    const title = el("h2", "title", { id: TITLE_ID });
    title.textContent = S.title;
    const headerText = el("div", "header__text");
    headerText.appendChild(title);
    if (S.subtitle) {
      const subtitle = el("p", "subtitle", { id: SUBTITLE_ID });
      subtitle.textContent = S.subtitle;
      headerText.appendChild(subtitle);
      panel.setAttribute("aria-describedby", SUBTITLE_ID);
    }
    const newButton = iconButton("restart", S.newConversation, "new-conversation");
    const closeButton = iconButton("close", S.close, "close");
    const actions = el("div", "header__actions");
    actions.append(newButton, closeButton);
    const header = el("div", "header");
    header.append(headerText, actions);

    const status = el("p", "status", { role: "status", "data-testid": "status" });
    // While a person handles the conversation: who answers now, and the way back.
    const handoverBar = el("div", "handover", { "data-testid": "handover-status" });
    const handoverText = el("p", "handover__text", { role: "status" });
    const backButton = el("button", "handover__back", { type: "button", "data-testid": "handover-cancel" });
    backButton.textContent = S.backToBot;
    handoverBar.append(handoverText, backButton);
    handoverBar.hidden = true;
    // tabindex: a scrollable region must be reachable by keyboard to be scrolled.
    // Not live itself: the announcer below reads each new answer once (a live log as well
    // would make some screen readers read every reply twice).
    const log = el("div", "log", {
      role: "log",
      "aria-live": "off",
      "aria-label": S.messagesLabel,
      tabindex: "0",
      "data-testid": "messages",
    });
    const typing = el("div", "typing", { role: "status", "data-testid": "typing" });
    const dots = el("span", "typing__dots", { "aria-hidden": "true" });
    dots.append(el("span"), el("span"), el("span"));
    const typingText = el("span", "typing__text");
    typing.append(dots, typingText);
    typing.hidden = true;

    const form = el("form", "composer", { autocomplete: "off", novalidate: "" });
    const inputLabel = el("label", "visually-hidden", { for: INPUT_ID });
    inputLabel.textContent = S.inputLabel;
    const input = el("textarea", "input", {
      id: INPUT_ID,
      rows: "1",
      maxlength: String(MAX_INPUT_CHARS),
      enterkeyhint: "send",
      "data-testid": "input",
    });
    if (S.placeholder) input.setAttribute("placeholder", S.placeholder);
    const sendButton = el("button", "send", { type: "submit", "data-testid": "send" });
    sendButton.textContent = S.send;
    form.append(inputLabel, input, sendButton);

    panel.append(header, status, handoverBar, log, typing, form);
    // Outside the panel so that replies are announced even while the panel is closed.
    const announcer = el("div", "visually-hidden", {
      "aria-live": "polite",
      "aria-atomic": "true",
      "data-testid": "announcer",
    });
    // Launcher before the panel it controls: Tab goes launcher → header → log → input → send.
    root.append(launcher, panel, announcer);
    shadow.append(link, root);

    function iconButton(name, label, testid) {
      const b = el("button", "icon-btn", {
        type: "button",
        "aria-label": label,
        title: label,
        "data-testid": testid,
      });
      b.appendChild(icon(name));
      return b;
    }

    // ---- session & history

    function loadSession() {
      const saved = store.get(SESSION_KEY);
      if (saved && ID_RE.test(saved)) return saved;
      const id = randomId();
      store.set(SESSION_KEY, id);
      return id;
    }

    const historyKey = () => HISTORY_PREFIX + session;

    function loadCursor() {
      const n = Number(store.get(CURSOR_PREFIX + session));
      return Number.isSafeInteger(n) && n > 0 ? n : 0;
    }
    const saveHistory = () => store.set(historyKey(), JSON.stringify(history));

    /** Add one entry to history and the log; returns its DOM node. */
    function pushEntry(entry) {
      history.push(entry);
      knownIds.add(entry.id);
      const node = renderEntry(entry);
      log.appendChild(node);
      while (history.length > MAX_HISTORY) {
        knownIds.delete(history.shift().id);
        if (log.firstElementChild) log.firstElementChild.remove();
      }
      saveHistory();
      return node;
    }

    function ensureGreeting() {
      if (history.length || !S.greeting) return;
      const ts = new Date().toISOString();
      pushEntry({ id: `greeting-${randomId()}`, from: "bot", kind: "greeting", text: S.greeting, buttons: [], ts, rating: null });
    }

    function renderAll() {
      log.replaceChildren();
      knownIds.clear();
      for (const entry of history) {
        knownIds.add(entry.id);
        log.appendChild(renderEntry(entry));
      }
      ensureGreeting();
      scrollToEnd();
    }

    // ---- rendering

    function renderEntry(entry) {
      const isBot = entry.from === "bot";
      const isAgent = entry.kind === "agent";
      const isNote = entry.kind === "system";
      let classes = `msg msg--${entry.from}${entry.kind === "error" ? " msg--error" : ""}`;
      if (isAgent) classes += " msg--staff";
      if (isNote) classes += " msg--note";
      const item = el("div", classes, { "data-id": entry.id });
      // Who speaks, for screen readers reading the log (bubbles only differ by colour).
      const speaker = el("span", "visually-hidden");
      speaker.textContent = `${isAgent ? `${S.staffLabel}:` : isBot ? S.announcePrefix : S.userLabel} `;
      let testid = isBot ? "msg-bot" : "msg-user";
      if (isAgent) testid = "msg-staff";
      if (isNote) testid = "msg-note";
      const bubble = el("div", "msg__bubble", { "data-testid": testid });
      if (entry.kind) bubble.setAttribute("data-kind", entry.kind);
      if (isBot) bubble.appendChild(renderRichText(document, entry.text));
      else bubble.textContent = entry.text; // the citizen's words, verbatim (pre-wrap in CSS)
      if (isAgent) {
        // A person wrote this, not the assistant: said in words, not only by colour.
        const label = el("span", "msg__label", { "data-testid": "staff-label", "aria-hidden": "true" });
        label.textContent = S.staffLabel;
        item.appendChild(label);
      }
      item.append(speaker, bubble);

      if (isBot && entry.buttons.length) item.appendChild(renderButtons(entry.buttons));

      const meta = el("div", "msg__meta");
      const date = toDate(entry.ts);
      const time = el("time", "msg__time", { datetime: date.toISOString() });
      time.textContent = clock(date);
      meta.appendChild(time);
      // Only real answers are rated: not the local greeting, notices or error apologies.
      if (isBot && !entry.kind && entry.text) meta.appendChild(renderFeedback(entry));
      item.appendChild(meta);
      return item;
    }

    function renderButtons(buttons) {
      const row = el("div", "chips", { role: "group", "aria-label": S.suggestions });
      for (const b of buttons) {
        const chip = el("button", "chip", { type: "button", "data-testid": "quick-reply" });
        chip.textContent = b.title;
        // Show what the citizen chose, send what Rasa expects (e.g. "/ask_fee{…}").
        // Buttons of older messages stay usable: a citizen may go back to a choice.
        chip.addEventListener("click", () => send(b.payload, b.title));
        row.appendChild(chip);
      }
      return row;
    }

    function renderFeedback(entry) {
      const group = el("div", "feedback", { role: "group", "aria-label": S.feedbackGroup });
      const make = (rating, label) => {
        const b = el("button", "feedback__btn", {
          type: "button",
          "aria-label": label,
          title: label,
          "aria-pressed": String(entry.rating === rating),
          "data-testid": `feedback-${rating}`,
          "data-rating": rating,
        });
        b.appendChild(icon("thumbUp", null, rating === "down"));
        return b;
      };
      const up = make("up", S.feedbackUp);
      const down = make("down", S.feedbackDown);
      const thanks = el("span", "feedback__thanks");
      let thanksTimer = null;
      const choose = (rating) => {
        if (entry.rating === rating) return; // already said; do not post it again
        entry.rating = rating;
        saveHistory();
        up.setAttribute("aria-pressed", String(rating === "up"));
        down.setAttribute("aria-pressed", String(rating === "down"));
        thanks.textContent = S.thanks;
        clearTimeout(thanksTimer);
        thanksTimer = setTimeout(() => {
          thanks.textContent = "";
        }, THANKS_MS);
        postFeedback(entry, rating);
      };
      up.addEventListener("click", () => choose("up"));
      down.addEventListener("click", () => choose("down"));
      group.append(up, down, thanks);
      return group;
    }

    function scrollToEnd() {
      if (!panel.hidden) log.scrollTop = log.scrollHeight;
    }

    /** After a reply: show its start if it is taller than the log (long procedure
     *  answers are read from the top), else scroll to the end. */
    function reveal(firstNode) {
      if (panel.hidden || !firstNode) return;
      const fromFirst = log.scrollHeight - firstNode.offsetTop;
      log.scrollTop = fromFirst > log.clientHeight ? firstNode.offsetTop - 8 : log.scrollHeight;
    }

    function announce(texts, prefix = S.announcePrefix) {
      const message = texts.map(plainText).filter(Boolean).join(" ");
      if (!message) return;
      // Emptied first so that the same answer twice is announced twice.
      announcer.textContent = "";
      setTimeout(() => {
        announcer.textContent = `${prefix} ${message}`;
      }, 50);
    }

    function setUnread(n) {
      unread = n;
      badge.hidden = n === 0;
      badgeLabel.hidden = n === 0;
      badge.textContent = n > 99 ? "99+" : String(n);
      badgeLabel.textContent = ` ${S.unread}`;
    }

    // ---- incoming messages

    function botEntry(m, kind) {
      const author = m && m.author;
      if (!kind && STAFF_KINDS.has(author)) kind = author;
      if (m && Number.isSafeInteger(m.seq) && m.seq > cursor) {
        cursor = m.seq;
        store.set(CURSOR_PREFIX + session, String(cursor));
      }
      const entry = {
        id: cleanId(m && m.id) || `local-${randomId()}`,
        from: "bot",
        text: m && typeof m.text === "string" ? m.text : "",
        buttons: cleanButtons(m && m.buttons),
        ts: toDate(m && m.ts).toISOString(),
        rating: null,
      };
      if (kind) entry.kind = kind;
      return entry;
    }

    /** Rasa's REST channel splits one answer at blank lines into several messages; show them
     *  as one bubble (one answer, one rating). A part with buttons ends a bubble, since the
     *  buttons belong under the text they follow. The last part's id identifies the whole. */
    function mergeParts(entries) {
      const merged = [];
      for (const entry of entries) {
        const prev = merged[merged.length - 1];
        if (prev && !prev.buttons.length && !prev.kind && !entry.kind) {
          prev.text = `${prev.text}\n\n${entry.text}`.trim();
          prev.buttons = entry.buttons;
          prev.id = entry.id;
          prev.ts = entry.ts;
        } else {
          merged.push(entry);
        }
      }
      return merged;
    }

    /** Render bot messages from a reply (kind: undefined), an apology ("error") … With
     *  `quiet`, an empty list shows nothing: while a person handles the conversation the bot
     *  is silent on purpose, and a push may carry only a state change. */
    function receiveBotMessages(messages, kind, quiet = false) {
      let entries = (Array.isArray(messages) ? messages : [])
        .map((m) => botEntry(m, kind))
        .filter((e) => e.text || e.buttons.length);
      if (!entries.length && quiet) return;
      if (!entries.length) entries = [botEntry({ text: kind === "error" ? S.error : S.noAnswer }, kind || "local")];
      entries = mergeParts(entries);
      entries = entries.filter((e) => !knownIds.has(e.id)); // a reply seen twice (other tab, resend)
      if (!entries.length) return;
      let first = null;
      for (const entry of entries) {
        const node = pushEntry(entry);
        first = first || node;
      }
      reveal(first);
      if (panel.hidden) setUnread(unread + entries.length);
      const staff = entries.every((e) => e.kind === "agent");
      announce(entries.map((e) => e.text), staff ? `${S.staffLabel}:` : S.announcePrefix);
    }

    // ---- human handover

    /** Show who answers now; poll for staff replies while the socket cannot push them. */
    function setHandover(state) {
      const valid = state && typeof state === "object" && (state.status === "waiting" || state.status === "held");
      handover = valid ? { status: state.status, afterHours: state.after_hours === true } : null;
      handoverBar.hidden = !handover;
      let text = "";
      if (handover && handover.status === "held") text = S.handoverHeld;
      else if (handover) text = handover.afterHours ? S.handoverAfterHours : S.handoverWaiting;
      if (handoverText.textContent !== text) handoverText.textContent = text;
      updatePolling();
    }

    function updatePolling() {
      const want = !!handover && !isOpen() && !suspended;
      if (want && !pollTimer) pollTimer = setInterval(pull, HANDOVER_POLL_MS);
      if (!want && pollTimer) {
        clearInterval(pollTimer);
        pollTimer = null;
      }
    }

    /** A reply to the citizen's message: bot answers, or (handover) staff notes only. */
    function receiveReply(messages, state) {
      setHandover(state);
      receiveBotMessages(messages, undefined, !!handover);
    }

    /** Staff messages the socket did not bring (it was down, or another server held it). */
    async function pull() {
      if (pulling) return;
      pulling = true;
      const forSession = session;
      try {
        const url = api(`/api/v1/messages?session=${encodeURIComponent(forSession)}&after=${cursor}`);
        const res = await fetch(url, { mode: "cors", credentials: "omit", headers: { Accept: "application/json" } });
        if (!res.ok) return;
        const data = await res.json();
        if (forSession !== session || !data || typeof data !== "object") return;
        receiveBotMessages(data.messages, undefined, true);
        setHandover(data.handover);
      } catch (e) {
        warn("could not fetch staff messages", e);
      } finally {
        pulling = false;
      }
    }

    function cancelHandover() {
      const forSession = session;
      fetch(api("/api/v1/handover/cancel"), {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session: forSession }),
      })
        .then((res) => {
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          if (forSession === session && !isOpen()) pull(); // a socket gets the note pushed
        })
        .catch((e) => {
          warn("could not leave the handover", e);
          showError();
        });
    }

    const showError = (text) => receiveBotMessages([{ text: typeof text === "string" && text.trim() ? text : S.error }], "error");

    // ---- sending

    function send(payload, shown) {
      const text = String(payload || "").trim();
      if (!text) return;
      const now = Date.now();
      if (text === lastSent.payload && now - lastSent.at < DOUBLE_CLICK_MS) return; // double click
      lastSent = { payload: text, at: now };

      const entry = {
        id: randomId(),
        from: "user",
        text: String(shown || text).trim() || text,
        buttons: [],
        ts: new Date(now).toISOString(),
        rating: null,
      };
      const node = pushEntry(entry);
      reveal(node);
      wanted = true;

      // One way only: the socket if it is open right now, otherwise REST. A frame handed
      // to an open socket is never re-sent by REST, even if the socket drops afterwards.
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "message", id: entry.id, text }));
        trackPending(entry.id);
      } else {
        sendViaRest(text);
        connect(); // so that the next message can use the socket
      }
    }

    function trackPending(id) {
      pendingWs.set(
        id,
        setTimeout(() => {
          pendingWs.delete(id);
          updateTyping();
          showError(S.error);
        }, REPLY_TIMEOUT_MS),
      );
      updateTyping();
    }

    /** The socket closed before answering: say so now rather than after the timeout. The
     *  message is not re-sent (the gateway may have processed it); the citizen can ask again. */
    function failPending() {
      if (!pendingWs.size) return;
      for (const t of pendingWs.values()) clearTimeout(t);
      pendingWs.clear();
      updateTyping();
      showError(S.error);
    }

    function settle(id) {
      if (id == null || !pendingWs.has(id)) return;
      clearTimeout(pendingWs.get(id));
      pendingWs.delete(id);
      updateTyping();
    }

    async function sendViaRest(text) {
      const forSession = session;
      const token = {};
      pendingRest.add(token);
      updateTyping();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), REPLY_TIMEOUT_MS);
      let status = 0;
      let data = null;
      try {
        const res = await fetch(api("/api/v1/chat"), {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ sender: forSession, text, metadata: { channel: "widget" } }),
          signal: controller.signal,
        });
        status = res.status;
        restReachable = true;
        try {
          data = await res.json();
        } catch (e) {
          data = null;
        }
      } catch (e) {
        if (e && e.name !== "AbortError") restReachable = false;
        warn("chat request failed", e);
      } finally {
        clearTimeout(timer);
        pendingRest.delete(token);
        updateTyping();
        updateStatus();
      }
      if (forSession !== session) return; // the conversation was reset meanwhile
      renderRestReply(status, data);
    }

    function renderRestReply(status, data) {
      const messages = data && Array.isArray(data.messages) ? data.messages : null;
      if (status >= 200 && status < 300 && messages) {
        receiveReply(messages, data.handover);
      } else if (messages && messages.length) {
        receiveBotMessages(messages, "error"); // 503: a ready-made apology with the hotline
      } else {
        showError(data && data.error && data.error.message);
      }
    }

    function postFeedback(entry, rating) {
      const messageId = cleanId(entry.id);
      if (!messageId) {
        warn("feedback not sent: this message has no server id");
        return;
      }
      fetch(api("/api/v1/feedback"), {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          session,
          message_id: messageId,
          rating,
          text: truncate(entry.text, MAX_FEEDBACK_CHARS),
        }),
      })
        .then((res) => {
          if (!res.ok) warn(`feedback refused (HTTP ${res.status})`);
        })
        .catch((e) => warn("feedback failed", e));
    }

    // ---- typing indicator & status line

    function setServerTyping(on) {
      serverTyping = on;
      clearTimeout(serverTypingTimer);
      if (on) {
        serverTypingTimer = setTimeout(() => setServerTyping(false), SERVER_TYPING_MAX_MS);
      }
      updateTyping();
    }

    function updateTyping() {
      // Also shown while a socket message awaits its reply, in case "typing" frames are lost.
      const on = serverTyping || pendingRest.size > 0 || pendingWs.size > 0;
      if (typing.hidden === !on) return;
      typing.hidden = !on;
      typingText.textContent = on ? S.typing : "";
    }

    function updateStatus() {
      // "Offline" only when there is no way through: the browser says so, or the socket is
      // down and REST has not proved it works (a proxy without WebSocket support still chats).
      const offline = navigator.onLine === false || (wanted && !isOpen() && failures > 0 && !restReachable);
      const text = offline ? S.offline : "";
      if (status.textContent !== text) status.textContent = text;
    }

    // ---- WebSocket

    const isOpen = () => !!socket && socket.readyState === WebSocket.OPEN;

    function connect() {
      if (!wanted || suspended || typeof WebSocket !== "function") return;
      if (socket && (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN)) return;
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      let ws;
      try {
        ws = new WebSocket(wsUrl(session));
      } catch (e) {
        // e.g. blocked by the host page's connect-src: REST keeps working.
        warn("WebSocket unavailable", e);
        failures += 1;
        updateStatus();
        scheduleReconnect();
        return;
      }
      socket = ws;
      let opened = false;
      ws.addEventListener("open", () => {
        if (socket !== ws) return;
        opened = true;
        failures = 0;
        updateStatus();
        updatePolling();
        pull(); // staff replies written while this page had no socket
      });
      ws.addEventListener("message", (event) => {
        if (socket === ws && typeof event.data === "string") handleFrame(event.data);
      });
      ws.addEventListener("close", () => {
        if (socket !== ws) return; // replaced on purpose (new conversation, page hidden)
        socket = null;
        setServerTyping(false);
        failPending(); // their replies would have come on this socket
        if (opened) restReachable = false; // fresh evidence of trouble
        failures += 1;
        updateStatus();
        updatePolling();
        scheduleReconnect();
      });
    }

    function scheduleReconnect() {
      if (reconnectTimer || !wanted || suspended) return;
      reconnectTimer = setTimeout(() => {
        reconnectTimer = null;
        connect();
      }, backoffDelay(failures));
    }

    function reconnectNow() {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      connect();
    }

    /** Drop the current socket without reconnect logic (new session, page hidden). */
    function dropSocket() {
      const old = socket;
      socket = null;
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      if (old) {
        try {
          old.close(1000);
        } catch (e) {
          /* already closing */
        }
      }
      setServerTyping(false);
    }

    function handleFrame(raw) {
      let frame;
      try {
        frame = JSON.parse(raw);
      } catch (e) {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "typing") {
        setServerTyping(frame.on === true);
      } else if (frame.type === "reply") {
        settle(frame.reply_to);
        setServerTyping(false);
        receiveReply(frame.messages, frame.handover);
      } else if (frame.type === "handover") {
        receiveBotMessages(frame.messages, undefined, true);
        setHandover(frame.handover);
      } else if (frame.type === "error") {
        settle(frame.reply_to);
        setServerTyping(false);
        showError(frame.message);
      } // other types: ignored, so the server may add some later
    }

    // ---- open / close / reset

    function open({ focus = true } = {}) {
      const wasHidden = panel.hidden;
      panel.hidden = false;
      root.classList.add("is-open");
      launcher.setAttribute("aria-expanded", "true");
      launcherLabel.textContent = S.close;
      launcher.title = S.close;
      setUnread(0);
      wanted = true;
      reconnectNow();
      updateStatus();
      if (wasHidden) scrollToEnd();
      if (focus) focusInput();
    }

    function close() {
      const hadFocus = panel.contains(shadow.activeElement);
      panel.hidden = true;
      root.classList.remove("is-open");
      launcher.setAttribute("aria-expanded", "false");
      launcherLabel.textContent = S.launcher;
      launcher.title = S.launcher;
      // Back to the launcher only if focus was in the panel: DVCWidget.close() called by the
      // host page must not steal focus from wherever the citizen is.
      if (hadFocus) launcher.focus();
    }

    function focusInput() {
      if (!ready) {
        focusWhenReady = true; // CSS still loading: the panel is not displayed yet
        return;
      }
      input.focus({ preventScroll: true });
    }

    /** New conversation: new anonymous id, empty history, greeting, input focused. */
    function reset() {
      const oldKey = historyKey();
      store.remove(CURSOR_PREFIX + session);
      session = randomId();
      store.set(SESSION_KEY, session);
      store.remove(oldKey);
      startSession();
      if (!panel.hidden) focusInput();
    }

    function startSession() {
      history = parseHistory(store.get(historyKey()));
      for (const t of pendingWs.values()) clearTimeout(t);
      pendingWs.clear();
      pendingRest.clear(); // their replies are dropped (see sendViaRest)
      setUnread(0);
      dropSocket();
      failures = 0;
      cursor = loadCursor();
      setHandover(null);
      renderAll();
      updateTyping();
      updateStatus();
      connect();
    }

    /** Another tab started a new conversation or added messages: follow it, so tabs never
     *  overwrite each other's history with a stale copy. */
    function onStorage(event) {
      if (event.key === SESSION_KEY) {
        store.remember(SESSION_KEY, event.newValue);
        if (event.newValue && ID_RE.test(event.newValue) && event.newValue !== session) {
          session = event.newValue;
          startSession();
        }
      } else if (event.key === historyKey()) {
        store.remember(event.key, event.newValue);
        history = parseHistory(event.newValue);
        renderAll();
      }
    }

    // ---- autosize (the rows attribute: no inline style needed)

    function autosize() {
      input.rows = 1;
      let rows = 1;
      while (rows < MAX_INPUT_ROWS && input.scrollHeight > input.clientHeight + 1) {
        rows += 1;
        input.rows = rows;
      }
    }

    // ---- events

    launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
    closeButton.addEventListener("click", close);
    newButton.addEventListener("click", reset);
    backButton.addEventListener("click", cancelHandover);

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) {
        input.focus();
        return;
      }
      input.value = "";
      autosize();
      send(text, text);
      input.focus();
    });

    input.addEventListener("input", autosize);
    // Enter sends, Shift+Enter is a new line; Enter that ends an IME composition does not send
    // (keyCode 229: Safari reports the composition's Enter that way).
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    });

    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !panel.hidden && !event.isComposing) {
        event.preventDefault();
        event.stopPropagation();
        close();
        launcher.focus();
      }
    });

    link.addEventListener("load", () => {
      ready = true;
      root.hidden = false;
      scrollToEnd();
      if (focusWhenReady && !panel.hidden) input.focus({ preventScroll: true });
      focusWhenReady = false;
    });
    link.addEventListener("error", () => {
      // Unstyled, the widget would spill plain buttons into the host page: stay hidden.
      console.error(`[dvc-widget] could not load ${config.cssUrl}; the widget stays hidden`);
    });

    window.addEventListener("online", () => {
      failures = 0;
      reconnectNow();
      updateStatus();
    });
    window.addEventListener("offline", updateStatus);
    window.addEventListener("storage", onStorage);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && wanted && !socket) reconnectNow();
    });
    // An open socket keeps a page out of the back/forward cache; close it on the way out.
    window.addEventListener("pagehide", () => {
      suspended = true;
      dropSocket();
      updatePolling();
    });
    window.addEventListener("pageshow", (event) => {
      suspended = false;
      if (event.persisted) reconnectNow();
      updatePolling();
    });

    // ---- start

    function mount() {
      document.body.appendChild(host);
      if (config.theme) applyTheme(shadow, config.theme);
      setUnread(0);
      launcherLabel.textContent = S.launcher;
      launcher.title = S.launcher;
      renderAll();
      // An ongoing conversation reconnects at once (replies, unread badge); a page view
      // where the widget was never used opens no socket at all.
      if (history.some((e) => e.from === "user")) {
        wanted = true;
        connect();
      }
      if (config.startOpen) open({ focus: false });
    }

    return { mount, open: () => open(), close, reset };
  }

  /** The theme colour through a constructed stylesheet: not an inline style, so a strict
   *  style-src allows it. If the browser lacks it, the default colour of widget.css stays. */
  function applyTheme(shadow, css) {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      shadow.adoptedStyleSheets = [...shadow.adoptedStyleSheets, sheet];
    } catch (e) {
      warn("theme colour not applied; using the default colour", e);
    }
  }

  // ------------------------------------------------------------------ boot

  function boot() {
    if (document.getElementById(ROOT_ID)) {
      warn("widget.js is included twice; the second copy does nothing");
      return;
    }
    if (typeof HTMLElement.prototype.attachShadow !== "function") {
      warn("this browser has no Shadow DOM; the widget is not shown");
      return;
    }
    const widget = createWidget(readConfig(SCRIPT));
    widget.mount();
    if (!window.DVCWidget) {
      window.DVCWidget = Object.freeze({ open: widget.open, close: widget.close, reset: widget.reset });
    }
  }

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot, { once: true });
})();
