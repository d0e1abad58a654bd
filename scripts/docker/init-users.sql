-- Accounts for shadowcut's tests (see docker-compose.yml). Run once by the
-- mysql / mariadb image entrypoint when the data volume is first created.
-- On mysql84-primary these statements are binlogged with GTIDs, so
-- mysql84-replica receives the same accounts through replication.
CREATE USER 'shadowcut'@'%' IDENTIFIED BY 'sandbox';
GRANT ALL PRIVILEGES ON *.* TO 'shadowcut'@'%' WITH GRANT OPTION;
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
