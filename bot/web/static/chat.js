/* Waymark web chat.
 *
 * Privacy: the session id lives only in this script's memory. Nothing is written to
 * localStorage, sessionStorage or cookies, so a reload starts a fresh chat.
 *
 * Exit this page follows the GOV.UK component: the button, or Shift pressed 3 times
 * within 5 seconds, blanks the page, ends the chat on the server and replaces this
 * page in the history with a neutral site.
 */
(function () {
  "use strict";

  var API = "/api/web/sessions";
  var MAX_LENGTH = 2000;
  var SHIFT_TIMEOUT_MS = 5000;

  var $ = function (id) { return document.getElementById(id); };
  var exitButton = $("exit-button");
  var exitStatus = $("exit-status");
  var exitIndicator = $("exit-indicator");
  var overlay = $("exit-overlay");
  var chat = $("chat");
  var transcript = $("transcript");
  var typing = $("typing");
  var ended = $("ended");
  var restart = $("restart");
  var form = $("composer");
  var group = $("message-group");
  var input = $("message");
  var error = $("message-error");
  var send = $("send");

  var exitUrl = exitButton.getAttribute("href");
  var greeting = transcript.firstElementChild.cloneNode(true);

  // Chat state: memory only.
  var sessionId = null;
  var sessionPromise = null;
  var events = null;
  var seen = {};
  var busy = false;
  var exiting = false;

  // ---------------------------------------------------------------- Exit this page

  function exitPage(event) {
    if (event) { event.preventDefault(); }
    if (exiting) { return; }
    exiting = true;
    // Blank the page at once, before anything else can go wrong.
    document.body.classList.add("exiting");
    overlay.hidden = false;
    transcript.textContent = "";
    input.value = "";
    document.title = "Loading";
    endSession();
    window.location.replace(exitUrl);
  }

  function endSession() {
    if (events) { events.close(); events = null; }
    if (sessionId === null) { return; }
    var id = sessionId;
    sessionId = null;
    sessionPromise = null;
    try {
      fetch(API + "/" + encodeURIComponent(id), { method: "DELETE", keepalive: true })
        .catch(function () {});
    } catch (e) { /* leaving anyway */ }
  }

  var shiftCount = 0;
  var shiftTimer = null;
  var lastKeyWasModified = false;

  function showShiftProgress() {
    var lights = exitIndicator.children;
    for (var i = 0; i < lights.length; i++) {
      lights[i].classList.toggle("exit-this-page__light--on", i < shiftCount);
    }
    exitIndicator.classList.toggle("exit-this-page__indicator--visible", shiftCount > 0);
  }

  function resetShift(message) {
    shiftCount = 0;
    clearTimeout(shiftTimer);
    shiftTimer = null;
    showShiftProgress();
    exitStatus.textContent = message || "";
  }

  // As GOV.UK: count Shift key-ups that were not part of a shortcut (Shift+letter).
  document.addEventListener("keyup", function (event) {
    if (event.key === "Shift" && !lastKeyWasModified) {
      shiftCount += 1;
      showShiftProgress();
      clearTimeout(shiftTimer);
      if (shiftCount >= 3) {
        resetShift("Exiting page.");
        exitPage();
      } else {
        exitStatus.textContent = shiftCount === 1
          ? "Shift, press 2 more times to exit."
          : "Shift, press 1 more time to exit.";
        shiftTimer = setTimeout(function () { resetShift("Exit this page expired."); },
          SHIFT_TIMEOUT_MS);
      }
    } else if (shiftTimer) {
      resetShift();
    }
    lastKeyWasModified = event.shiftKey;
  }, true);

  exitButton.addEventListener("click", exitPage);
  // The link has role="button", so Space must work as it does on a button.
  exitButton.addEventListener("keydown", function (event) {
    if (event.key === " ") { exitPage(event); }
  });

  // A page restored from the back-forward cache after exiting must not show anything.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && exiting) { window.location.replace(exitUrl); }
  });
  // Closing or reloading the tab ends the chat too: nothing could reconnect to it.
  window.addEventListener("pagehide", function () { endSession(); });

  // ---------------------------------------------------------------- Transcript

  function who(name) {
    var label = document.createElement("span");
    label.className = "message__who";
    label.textContent = name;
    var hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = " said:";
    label.appendChild(hidden);
    return label;
  }

  function text(value) {
    var p = document.createElement("p");
    p.className = "message__text";
    p.textContent = value;
    return p;
  }

  // The same numbers as bot/channels/phones.py: tappable on a phone, plain text in the DOM.
  var PHONE = /(^|[^\w+\/:£.,-])(18001 0\d{2,4}(?: \d{2,4}){1,3}|0\d{2,4}(?: \d{2,4}){1,3}|0\d{9,10}|116 \d{3}|999|101|111|85258)(?![\w\/:£-])/g;

  function botText(value) {
    var p = document.createElement("p");
    p.className = "message__text";
    var last = 0;
    var match;
    PHONE.lastIndex = 0;
    while ((match = PHONE.exec(value)) !== null) {
      var start = match.index + match[1].length;
      p.appendChild(document.createTextNode(value.slice(last, start)));
      var link = document.createElement("a");
      link.href = "tel:" + match[2].replace(/ /g, "");
      link.textContent = match[2];
      p.appendChild(link);
      last = start + match[2].length;
    }
    p.appendChild(document.createTextNode(value.slice(last)));
    return p;
  }

  function scrollToComposer() {
    var smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    form.scrollIntoView({ block: "end", behavior: smooth ? "smooth" : "auto" });
  }

  function addUserMessage(value) {
    var el = document.createElement("div");
    el.className = "message message--user";
    el.appendChild(who("You"));
    el.appendChild(text(value));
    transcript.appendChild(el);
    scrollToComposer();
    return el;
  }

  function addBotMessage(message) {
    if (!message || typeof message.id !== "number" || seen[message.id]) { return; }
    seen[message.id] = true;
    var el = document.createElement("div");
    el.className = "message message--bot";
    el.setAttribute("data-id", String(message.id));
    el.appendChild(who("Waymark"));
    el.appendChild(botText(message.text || ""));
    var buttons = message.buttons || [];
    if (buttons.length) {
      var choices = document.createElement("div");
      choices.className = "message__buttons";
      choices.setAttribute("role", "group");
      choices.setAttribute("aria-label", "Reply options");
      buttons.forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "button button--secondary";
        button.textContent = b.title;
        button.addEventListener("click", function () {
          sendMessage(b.title, b.payload, true);
        });
        choices.appendChild(button);
      });
      el.appendChild(choices);
    }
    // Keep Waymark's messages in id order, whichever way they arrived.
    var later = null;
    var bots = transcript.querySelectorAll(".message--bot[data-id]");
    for (var i = 0; i < bots.length; i++) {
      if (Number(bots[i].getAttribute("data-id")) > message.id) { later = bots[i]; break; }
    }
    transcript.insertBefore(el, later);
    scrollToComposer();
  }

  // ---------------------------------------------------------------- Errors and status

  function showError(message) {
    error.textContent = "";
    if (message) {
      var prefix = document.createElement("span");
      prefix.className = "visually-hidden";
      prefix.textContent = "Error: ";
      error.appendChild(prefix);
      error.appendChild(document.createTextNode(message));
    }
    group.classList.toggle("form-group--error", Boolean(message));
    if (message) { input.setAttribute("aria-invalid", "true"); }
    else { input.removeAttribute("aria-invalid"); }
  }

  function setBusy(value) {
    busy = value;
    send.setAttribute("aria-disabled", value ? "true" : "false");
    typing.textContent = value ? "Waymark is typing" : "";
  }

  function HttpError(status, detail) {
    this.status = status;
    this.detail = detail;
  }

  function request(method, url, body) {
    var options = { method: method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.ok) { return response.status === 204 ? null : response.json(); }
      return response.json().catch(function () { return {}; }).then(function (data) {
        throw new HttpError(response.status, data && data.detail);
      });
    });
  }

  function explain(err) {
    if (!(err instanceof HttpError)) {
      return "Sorry, your message was not sent. Check your internet connection and try again. " +
        "If you are in danger now, call 999.";
    }
    if (err.status === 422) {
      return typeof err.detail === "string" && err.detail
        ? err.detail
        : "Your message was not sent. Messages can be up to " + MAX_LENGTH + " characters.";
    }
    if (err.status === 429) {
      return "You have sent a lot of messages. Wait a minute, then try again.";
    }
    return "Sorry, something went wrong and your message was not sent. Try again in a moment. " +
      "If you are in danger now, call 999.";
  }

  // ---------------------------------------------------------------- Session

  function openEvents(url, retries) {
    if (!window.EventSource || exiting) { return; }
    var id = sessionId;
    events = new EventSource(url);
    events.addEventListener("message", function (event) {
      try { addBotMessage(JSON.parse(event.data)); } catch (e) { /* ignore a bad event */ }
    });
    // The server ended this chat (exit from another tab, or it expired).
    events.addEventListener("end", function () {
      if (sessionId === id && !exiting) { chatEnded(); }
    });
    events.addEventListener("error", function () {
      // The browser retries by itself unless the server refused the stream.
      if (events && events.readyState === EventSource.CLOSED) {
        events = null;
        if ((retries || 0) < 3) {
          setTimeout(function () {
            if (sessionId === id && !events) { openEvents(url, (retries || 0) + 1); }
          }, 5000);
        }
      }
    });
  }

  function ensureSession() {
    if (sessionPromise) { return sessionPromise; }
    sessionPromise = request("POST", API).then(function (data) {
      sessionId = data.session_id;
      if (exiting) { endSession(); throw new Error("exiting"); }
      openEvents(data.events_url || API + "/" + encodeURIComponent(sessionId) + "/events");
      return sessionId;
    }, function (err) {
      sessionPromise = null;
      throw err;
    });
    return sessionPromise;
  }

  function chatEnded() {
    if (events) { events.close(); events = null; }
    sessionId = null;
    sessionPromise = null;
    ended.hidden = false;
    form.hidden = true;
    restart.focus();
  }

  restart.addEventListener("click", function () {
    transcript.textContent = "";
    transcript.appendChild(greeting.cloneNode(true));
    seen = {};
    showError("");
    ended.hidden = true;
    form.hidden = false;
    input.focus();
  });

  // ---------------------------------------------------------------- Sending

  function restoreText(value) {
    // Give the unsent words back, without losing anything typed since.
    input.value = input.value ? value + "\n" + input.value : value;
  }

  function sendMessage(value, payload, fromButton) {
    if (busy || exiting) { return; }
    if (fromButton) { input.focus(); }
    if (!value.trim()) {
      showError("Type a message, then select Send.");
      return;
    }
    if (value.length > MAX_LENGTH) {
      showError("Your message is too long. Messages can be up to " + MAX_LENGTH + " characters.");
      return;
    }
    showError("");
    setBusy(true);
    var typed = !fromButton;
    if (typed) { input.value = ""; }
    var bubble = addUserMessage(value);
    var body = { text: value };
    if (payload) { body.payload = payload; }

    ensureSession()
      .then(function (id) {
        return request("POST", API + "/" + encodeURIComponent(id) + "/messages", body);
      })
      .then(function (data) {
        (data && data.messages || []).forEach(addBotMessage);
      })
      .catch(function (err) {
        if (exiting) { return; }
        bubble.parentNode && bubble.parentNode.removeChild(bubble);
        if (typed) { restoreText(value); }
        if (err instanceof HttpError && err.status === 404) {
          chatEnded();
        } else {
          showError(explain(err));
        }
      })
      .then(function () {
        setBusy(false);
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendMessage(input.value, null, false);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage(input.value, null, false);
    }
  });

  send.addEventListener("click", function () { input.focus(); });

  chat.hidden = false;
})();
