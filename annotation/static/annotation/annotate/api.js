/* The annotator's JSON API: one assignment at a time (`next`), answers, playback events, problem reports
 * and the recent answers. Every write carries the CSRF token; a refusal becomes an ApiError whose message
 * is the server's own explanation. */
import { format } from "./ui.js";

export class ApiError extends Error {}

export function csrfToken() {
  const cookie = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (cookie) return decodeURIComponent(cookie[1]);
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

/* What a refusal says: DRF's `detail`, or every field error joined, or the status when neither came. */
export function errorText(data, status, strings) {
  if (data && typeof data.detail === "string") return data.detail;
  if (data && typeof data === "object") {
    const parts = [];
    for (const value of Object.values(data)) {
      if (Array.isArray(value)) parts.push(...value.map(String));
      else if (typeof value === "string") parts.push(value);
    }
    if (parts.length) return parts.join(" ");
  }
  return format(strings.server_error, { status: status });
}

export class AnnotatorApi {
  /* `urls` is the page config's `api`: `next` and `recent` as they are, the others with a `{token}`
   * where the assignment's token goes. */
  constructor(urls, strings) {
    this.urls = urls;
    this.strings = strings;
  }

  async request(method, url, body) {
    const headers = { Accept: "application/json" };
    const options = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrfToken();
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new ApiError(this.strings.network_error);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) throw new ApiError(errorText(data, response.status, this.strings));
    return data;
  }

  urlFor(name, token) {
    return this.urls[name].replace("{token}", encodeURIComponent(token || ""));
  }

  next() {
    return this.request("GET", this.urls.next);
  }

  recent() {
    return this.request("GET", this.urls.recent);
  }

  answer(token, body) {
    return this.request("POST", this.urlFor("answer", token), body);
  }

  playback(token, body) {
    return this.request("POST", this.urlFor("playback", token), body);
  }

  problem(token, body) {
    return this.request("POST", this.urlFor("problem", token), body);
  }
}
