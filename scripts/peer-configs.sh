# shellcheck shell=bash
# scripts/peer-configs.sh — sourced, not run: the Apache mod_dav and nginx (dav + dav-ext)
# configurations that bench/run.sh and scripts/peers-client-test.sh start those servers with,
# in one place so both measure and test the same setup.
#
#   write_nginx_conf DIR PORT ROOT    writes DIR/nginx.conf (logs, pid and temp files in DIR)
#   write_apache_conf DIR PORT ROOT   writes DIR/httpd.conf (run, lock and log files in DIR)
#
# Start them with
#   /usr/sbin/nginx -p DIR/ -e DIR/logs/error.log -c DIR/nginx.conf -g "daemon off;"
#   /usr/sbin/apache2 -f DIR/httpd.conf -DFOREGROUND
# Apache runs its children as www-data: ROOT and DIR/lock must belong to it (the caller's job,
# since only the caller knows whether ROOT is a copy it may chown).

write_nginx_conf() {
  local dir="$1" port="$2" root="$3"
  mkdir -p "$dir/tmp" "$dir/logs"
  cat >"$dir/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
user root root;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    dav_ext_lock_zone zone=davlock:10m;
    server {
        listen 127.0.0.1:$port;
        server_name 127.0.0.1;
        root $root;
        client_max_body_size 0;
        location / {
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS LOCK UNLOCK;
            dav_ext_lock zone=davlock;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
        }
    }
}
EOF
}

write_apache_conf() {
  local dir="$1" port="$2" root="$3"
  mkdir -p "$dir/run" "$dir/lock" "$dir/logs"
  cat >"$dir/httpd.conf" <<EOF
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/run/httpd.pid"
DefaultRuntimeDir "$dir/run"
Mutex file:$dir/run default
ErrorLog "$dir/logs/error.log"
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dav_module /usr/lib/apache2/modules/mod_dav.so
LoadModule dav_fs_module /usr/lib/apache2/modules/mod_dav_fs.so
LoadModule dav_lock_module /usr/lib/apache2/modules/mod_dav_lock.so
TypesConfig /etc/mime.types
KeepAlive On
MaxKeepAliveRequests 0
Timeout 60
EnableSendfile On
DavLockDB "$dir/lock/DavLock"
DocumentRoot "$root"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "$root">
    Dav On
    DavDepthInfinity On
    Options None
    AllowOverride None
    Require all granted
</Directory>
EOF
}
