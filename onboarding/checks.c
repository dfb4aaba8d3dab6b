/* checks.c - the onboarding service's questions to Grist and DS, see checks.h. */
#include "checks.h"
#include "onboard_queries.h"

#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/secret.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (4 * 1024 * 1024)

typedef struct buf {
    char *p;
    size_t n;
    int over;
} buf_t;

static size_t on_data(char *d, size_t size, size_t nmemb, void *ud) {
    buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > MAX_BODY) {
        b->over = 1;
        return 0;
    }
    b->p = d2g_realloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* One request; *status 0 without an answer. *body malloc'ed, never NULL. */
static void call(const char *method, const char *url, const char *bearer, const char *body,
                 long timeout_s, long *status, char **resp) {
    buf_t b = {d2g_strdup(""), 0, 0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char *auth = NULL;
    *status = 0;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_s < 10 ? timeout_s : 10L);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
        curl_easy_setopt(c, CURLOPT_USERAGENT, "ds2grist-onboarding");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        h = curl_slist_append(h, "Accept: application/json");
        if (body) {
            h = curl_slist_append(h, "Content-Type: application/json");
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        }
        if (bearer) {
            size_t n = strlen(bearer) + 32;
            auth = d2g_malloc(n);
            snprintf(auth, n, "Authorization: Bearer %s", bearer);
            h = curl_slist_append(h, auth);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(c);
    }
    /* The header list held the bearer token: wipe before freeing. */
    for (struct curl_slist *s = h; s; s = s->next)
        if (!strncmp(s->data, "Authorization:", 14))
            memset(s->data, 0, strlen(s->data));
    curl_slist_free_all(h);
    d2g_secret_free(auth);
    if (b.over)
        *status = 0;
    *resp = b.p;
}

/* Grist's {"error": "..."} text, "" if none. */
static const char *grist_error(json_t *o) {
    json_t *e = o ? json_object_get(o, "error") : NULL;
    return json_is_string(e) ? json_string_value(e) : "";
}

static int valid_doc(const char *s, size_t n) {
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return !(n <= 2 && s[0] == '.'); /* not "." or ".." */
}

int d2g_ob_server_allowed(const d2g_config_t *cfg, const d2g_grist_server_t *srv) {
    if (cfg->onboarding.n_grist_servers == 0)
        return 1;
    for (size_t i = 0; i < cfg->onboarding.n_grist_servers; i++)
        if (!strcmp(cfg->onboarding.grist_servers[i], srv->name))
            return 1;
    return 0;
}

int d2g_ob_parse_base_url(const d2g_config_t *cfg, const char *base_url,
                          const d2g_grist_server_t **srv, char *doc, size_t doclen) {
    for (size_t i = 0; i < cfg->grist.n_servers; i++) {
        const d2g_grist_server_t *s = &cfg->grist.servers[i];
        size_t ul = strlen(s->url);
        if (!d2g_ob_server_allowed(cfg, s) || strncmp(base_url, s->url, ul) != 0 ||
            base_url[ul] != '/')
            continue;
        const char *rest = base_url + ul + 1;
        if (!strncmp(rest, "o/", 2)) { /* a team site: /o/<org>/ */
            const char *slash = strchr(rest + 2, '/');
            if (!slash || !valid_doc(rest + 2, (size_t)(slash - rest - 2)))
                continue;
            rest = slash + 1;
        }
        if (strncmp(rest, "api/docs/", 9) != 0)
            continue;
        rest += 9;
        size_t n = strlen(rest);
        if (n > 0 && rest[n - 1] == '/')
            n--;
        if (!valid_doc(rest, n) || n + 1 > doclen)
            continue;
        memcpy(doc, rest, n);
        doc[n] = '\0';
        *srv = s;
        return 0;
    }
    return -1;
}

d2g_ob_verdict_t d2g_ob_check_grist_token(const d2g_grist_server_t *srv, const char *doc,
                                          const char *token, int need_write, long timeout_s,
                                          char *detail, size_t detaillen) {
    CURL *c = curl_easy_init();
    char *esc = c ? curl_easy_escape(c, token, 0) : NULL;
    if (c)
        curl_easy_cleanup(c);
    if (!esc) {
        d2g_err_set(detail, detaillen, "out of memory");
        return D2G_OB_UNAVAILABLE;
    }
    size_t n = strlen(srv->url) + strlen(doc) + strlen(esc) + 64;
    char *url = d2g_malloc(n);
    snprintf(url, n, "%s/api/docs/%s/%s?auth=%s", srv->url, doc, need_write ? "flush" : "tables",
             esc);
    memset(esc, 0, strlen(esc));
    curl_free(esc);
    long status;
    char *body;
    call(need_write ? "POST" : "GET", url, NULL, need_write ? "{}" : NULL, timeout_s, &status,
         &body);
    d2g_secret_free(url); /* it held the token */
    json_t *o = json_loads(body, 0, NULL);
    const char *e = grist_error(o);
    d2g_ob_verdict_t v;
    if (status == 200)
        v = D2G_OB_OK;
    else if (status == 401 && strstr(e, "expired"))
        v = D2G_OB_TOKEN_EXPIRED;
    else if (status == 403 && !strcmp(e, "No write access"))
        v = D2G_OB_READ_ONLY;
    else if (status == 401 || status == 403 || status == 404)
        v = D2G_OB_TOKEN_INVALID;
    else
        v = D2G_OB_UNAVAILABLE;
    d2g_err_set(detail, detaillen, "Grist %s answered %ld", srv->name, status);
    json_decref(o);
    free(body);
    return v;
}

d2g_ob_verdict_t d2g_ob_check_platform(const d2g_grist_server_t *srv, const char *doc,
                                       long timeout_s, char *detail, size_t detaillen) {
    size_t n = strlen(srv->url) + strlen(doc) + 32;
    char *url = d2g_malloc(n);
    snprintf(url, n, "%s/api/docs/%s", srv->url, doc);
    long status;
    char *body;
    call("GET", url, srv->api_key, NULL, timeout_s, &status, &body);
    free(url);
    json_t *o = json_loads(body, 0, NULL);
    d2g_ob_verdict_t v;
    json_t *access = o ? json_object_get(o, "access") : NULL;
    const char *a = json_is_string(access) ? json_string_value(access) : "";
    if (status == 200 && (!strcmp(a, "owners") || !strcmp(a, "editors")))
        v = D2G_OB_OK;
    else if (status == 200)
        v = D2G_OB_READ_ONLY;
    else if (status == 403 || status == 404)
        v = D2G_OB_NO_ACCESS;
    else
        v = D2G_OB_UNAVAILABLE; /* 401 included: the platform's own key is refused */
    d2g_err_set(detail, detaillen, "Grist %s answered %ld to the platform's key%s%s", srv->name,
                status, status == 200 ? ", access " : "", status == 200 ? a : "");
    json_decref(o);
    free(body);
    return v;
}

d2g_ob_verdict_t d2g_ob_check_ds(const char *endpoint, const char *ds_token, int64_t procedure,
                                 long timeout_s, json_t **demarche, char *detail,
                                 size_t detaillen) {
    *demarche = NULL;
    json_t *req = json_pack("{ss s{sI}}", "query", d2g_gql_onboard_demarche, "variables", "number",
                            (json_int_t)procedure);
    char *payload = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    long status;
    char *body;
    call("POST", endpoint, ds_token, payload, timeout_s, &status, &body);
    free(payload);
    json_t *o = json_loads(body, 0, NULL);
    free(body);
    d2g_ob_verdict_t v = D2G_OB_UNAVAILABLE;
    json_t *d = o ? json_object_get(json_object_get(o, "data"), "demarche") : NULL;
    json_t *errs = o ? json_object_get(o, "errors") : NULL;
    const char *code = "";
    if (json_is_array(errs) && json_array_size(errs) > 0) {
        json_t *c = json_object_get(json_object_get(json_array_get(errs, 0), "extensions"), "code");
        if (json_is_string(c))
            code = json_string_value(c);
    }
    if (status == 200 && json_is_object(d)) {
        *demarche = json_incref(d);
        v = D2G_OB_OK;
    } else if (status == 401 || status == 403 || !strcmp(code, "unauthorized") ||
               !strcmp(code, "forbidden")) {
        v = D2G_OB_DS_REFUSED;
    } else if (!strcmp(code, "not_found")) {
        v = D2G_OB_DS_NOT_FOUND;
    }
    d2g_err_set(detail, detaillen, "DS answered %ld%s%s", status, code[0] ? ", code " : "", code);
    json_decref(o);
    return v;
}
