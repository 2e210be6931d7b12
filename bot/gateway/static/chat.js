// Chat page for the dvc-assistant gateway. Plain JS, no build step, no third-party code.
// Bot text is always inserted with textContent (never innerHTML): replies may quote
// citizen input or catalog data, and neither may become markup.
(function () {
  "use strict";

  var API_URL = "/api/v1/chat";
  var SENDER_KEY = "dvc-assistant.sender";
  var FALLBACK_APOLOGY =
    "Xin lỗi, hiện không kết nối được tới trợ lý. Bạn vui lòng kiểm tra mạng và thử lại sau ít phút.";
  var GREETING =
    "Xin chào! Tôi là trợ lý dịch vụ công. Bạn cần hỏi về thủ tục nào (hồ sơ, lệ phí, thời gian, nơi nộp…)?";

  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("input");
  var sendButton = document.getElementById("send");
  var statusLine = document.getElementById("status");
  var busy = false;

  function randomId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; getRandomValues does not (e.g. http on a LAN IP).
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // One id per browser so Rasa keeps the conversation (slots, context) across reloads.
  function senderId() {
    var id = null;
    try {
      id = window.localStorage.getItem(SENDER_KEY);
      if (!id) {
        id = "web-" + randomId();
        window.localStorage.setItem(SENDER_KEY, id);
      }
    } catch (e) {
      // Storage blocked (private mode): keep an id for this page only.
      id = id || "web-" + randomId();
    }
    return id;
  }
  var sender = senderId();

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  function addMessage(role, text, buttons) {
    var item = document.createElement("li");
    item.className = "msg msg--" + role + (role === "error" ? " msg--bot" : "");
    if (text) {
      var bubble = document.createElement("div");
      bubble.className = "msg__bubble";
      bubble.textContent = text;
      item.appendChild(bubble);
    }
    if (buttons && buttons.length) {
      var row = document.createElement("div");
      row.className = "msg__buttons";
      buttons.forEach(function (b) {
        var chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.textContent = b.title;
        chip.disabled = busy;
        chip.addEventListener("click", function () {
          // Show what the citizen chose, send what Rasa expects (e.g. "/ask_fee{...}").
          send(b.title, b.payload || b.title);
        });
        row.appendChild(chip);
      });
      item.appendChild(row);
    }
    list.appendChild(item);
    scrollToEnd();
  }

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
    statusLine.hidden = !value;
    Array.prototype.forEach.call(list.querySelectorAll(".chip"), function (chip) {
      chip.disabled = value;
    });
  }

  // Human handover: while staff hold the conversation the bot is silent (an empty reply is
  // normal), and staff messages are pulled from /api/v1/messages every few seconds.
  var PULL_URL = "/api/v1/messages";
  var STAFF_LABEL = "Cán bộ hỗ trợ: ";
  var cursor = 0;
  var pullTimer = null;

  function showStaff(messages) {
    messages.forEach(function (m) {
      if (typeof m.seq === "number" && m.seq <= cursor) return;
      if (typeof m.seq === "number") cursor = m.seq;
      addMessage("bot", (m.author === "agent" ? STAFF_LABEL : "") + (m.text || ""), []);
    });
  }

  function followHandover(state) {
    if (state && !pullTimer) {
      pullTimer = window.setInterval(pull, 4000);
    } else if (!state && pullTimer) {
      window.clearInterval(pullTimer);
      pullTimer = null;
    }
  }

  function pull() {
    fetch(PULL_URL + "?session=" + encodeURIComponent(senderId()) + "&after=" + cursor,
          { cache: "no-store" })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (data) {
        if (!data) return;
        showStaff(Array.isArray(data.messages) ? data.messages : []);
        followHandover(data.handover);
      })
      .catch(function () { /* offline: the next tick tries again */ });
  }

  function renderReply(status, data) {
    var messages = data && Array.isArray(data.messages) ? data.messages : null;
    if (status >= 200 && status < 300 && messages) {
      var handover = data.handover || null;
      if (!messages.length && !handover) {
        addMessage("bot", "Xin lỗi, tôi chưa có câu trả lời cho câu hỏi này. Bạn thử hỏi cách khác nhé.");
      }
      messages.forEach(function (m) {
        if (m.author) {
          showStaff([m]);
        } else {
          addMessage("bot", m.text || "", Array.isArray(m.buttons) ? m.buttons : []);
        }
      });
      followHandover(handover);
      return;
    }
    if (messages && messages.length) {
      // 503: the gateway sends a ready-made apology with the hotline.
      messages.forEach(function (m) { addMessage("error", m.text || FALLBACK_APOLOGY, []); });
      return;
    }
    var message = data && data.error && data.error.message;
    addMessage("error", message || FALLBACK_APOLOGY, []);
  }

  function send(shownText, payload) {
    if (busy) return;
    var text = (payload || "").trim();
    if (!text) return;
    addMessage("user", shownText);
    setBusy(true);
    fetch(API_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ sender: sender, text: text, metadata: {} })
    })
      .then(function (res) {
        return res.json().then(
          function (data) { return { status: res.status, data: data }; },
          function () { return { status: res.status, data: null }; }
        );
      })
      .then(function (r) { renderReply(r.status, r.data); })
      .catch(function () { addMessage("error", FALLBACK_APOLOGY, []); })
      .then(function () {
        setBusy(false);
        input.focus();
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    input.value = "";
    send(text, text);
  });

  // Enter sends, Shift+Enter inserts a line break (IME composition is left alone).
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit();
      } else {
        form.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    }
  });

  addMessage("bot", GREETING, []);
  input.focus();
})();
