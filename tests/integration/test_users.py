"""Users routes of CONTRACT §2.3 through nginx."""
import uuid

from harness import http, sql
from test_auth import new_user, get, post, ip, PW, codes


def put(path, body, token):
    return http("PUT", "/api/v1" + path, body=body,
                headers={"Authorization": "Bearer " + token, "X-Forwarded-For": ip()})


def delete(path, body, token):
    return http("DELETE", "/api/v1" + path, body=body,
                headers={"Authorization": "Bearer " + token, "X-Forwarded-For": ip()})


def test_users_me_get_and_update():
    body, reg = new_user(full_name="Grace")
    tok = reg["access_token"]
    st, _, _, me = get("/users/me", tok)
    assert st == 200 and me["full_name"] == "Grace"
    new = "n_" + uuid.uuid4().hex[:10]
    st, _, _, js = put("/users/me", {"username": new, "preferred_region": "asia-pacific",
                                     "avatar_url": "https://img.example.com/a.png",
                                     "email": "ignored@example.com", "subscription_plan": "admin"}, tok)
    assert st == 200, js
    assert js["username"] == new and js["preferred_region"] == "asia-pacific"
    assert js["avatar_url"] == "https://img.example.com/a.png"
    assert js["email"] == body["email"].lower() and js["subscription_plan"] == "free"
    assert js["full_name"] == "Grace"
    st, _, _, js = put("/users/me", {"full_name": "", "avatar_url": ""}, tok)
    assert st == 200 and js["full_name"] is None and js["avatar_url"] is None
    st, _, _, js = put("/users/me", {}, tok)
    assert st == 200 and js["username"] == new


def test_users_update_validation_and_conflict():
    a, _ = new_user()
    _, reg = new_user()
    tok = reg["access_token"]
    st, _, _, js = put("/users/me", {"username": a["username"].upper()}, tok)
    assert st == 409 and js["detail"] == "Username already taken"
    st, _, _, js = put("/users/me", {"avatar_url": "ftp://x", "preferred_region": "moon",
                                     "full_name": 3, "username": "x"}, tok)
    assert st == 422
    assert codes(js) == {("avatar_url", "invalid_url"), ("preferred_region", "invalid_choice"),
                         ("full_name", "type_error"), ("username", "too_short")}
    st, _, _, js = http("PUT", "/api/v1/users/me", raw=b"{bad", headers={"Authorization": "Bearer " + tok})
    assert st == 400 and js["detail"] == "Invalid JSON in request body"


def test_users_delete_fresh_login_and_password():
    body, reg = new_user()
    tok = reg["access_token"]
    st, _, _, js = delete("/users/me", {"password": "Wrong0ne"}, tok)
    assert st == 400 and js["detail"] == "Incorrect password"
    # Make the login old: the password becomes required.
    sql("UPDATE login_sessions SET authenticated_at = now() - interval '11 minutes' "
        "WHERE user_id = '%s'" % reg["user"]["id"])
    st, _, _, js = delete("/users/me", None, tok)
    assert st == 403 and js["detail"] == "Please confirm your password"
    st, _, _, js = delete("/users/me", {"password": PW}, tok)
    assert st == 200 and js == {"message": "User account deleted successfully"}
    assert get("/users/me", tok)[0] == 401
    st, _, _, js = post("/auth/login", {"username": body["username"], "password": PW})
    assert st == 401
    # The names are free again.
    st, _, _, js = post("/auth/register", {"username": body["username"], "email": body["email"], "password": PW})
    assert st == 201
    uid = reg["user"]["id"]
    rows = sql("SELECT username, email, is_active FROM users WHERE id = '%s'" % uid)
    assert rows == [["deleted_" + uid, "deleted_%s@deleted.invalid" % uid, "f"]], rows


def test_users_delete_fresh_without_password():
    _, reg = new_user()
    st, _, _, js = delete("/users/me", None, reg["access_token"])
    assert st == 200


def test_users_routes_need_auth():
    for m in ("GET", "PUT", "DELETE"):
        st, hd, _, js = http(m, "/api/v1/users/me")
        assert st == 401 and js["detail"] == "Not authenticated" and hd["www-authenticate"] == "Bearer"


def test_users_delete_terminates_environments():
    _, reg = new_user()
    tok = reg["access_token"]
    st, _, _, env = http("POST", "/api/v1/environments", body={"name": "doomed", "template": "ubuntu"},
                         headers={"Authorization": "Bearer " + tok, "X-Forwarded-For": ip()})
    assert st == 201, (st, env)
    st, _, _, js = delete("/users/me", None, tok)
    assert st == 200
    rows = sql("SELECT status FROM environments WHERE id = :'p1'", env["id"])
    assert rows == [["terminated"]], rows
    rows = sql("SELECT count(*) FROM jobs WHERE kind = 'env.destroy' AND payload->>'id' = :'p1'", env["id"])
    assert rows[0][0] != "0", rows


def test_delete_account_voids_mailed_reset_link():
    """A reset link mailed before the account was deleted must not give
    the deleted account a password again (or queue mail to it)."""
    import re
    from test_auth import read_mail
    body, reg = new_user()
    email = body["email"].lower()
    st, _, _, _ = post("/auth/forgot-password", {"email": email})
    assert st == 200
    m = re.search(r"/reset-password\?token=([A-Za-z0-9_-]{43})",
                  read_mail(email, subject="Reset your DevPocket password"))
    assert m
    st, _, _, js = delete("/users/me", {"password": PW}, reg["access_token"])
    assert st == 200, (st, js)
    st, _, _, js = post("/auth/reset-password", {"token": m.group(1), "new_password": "N3wPassword"})
    assert st == 400 and js["detail"] == "Invalid or expired reset token", (st, js)
    assert sql("SELECT password_hash IS NULL FROM users WHERE id = :'p1'", reg["id"]) == [["t"]]
