//! The writer's group commit against a real database file: what a failure does to the
//! rest of its group.

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{commit, open, Reply, Write};
use crate::model::NewTask;
use crate::store::sqlite::SqliteStore;
use crate::testing::new_task;

/// A migrated database and the writer's connection to it.
async fn database(dir: &tempfile::TempDir) -> Connection {
    let path = dir.path().join("kiln.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    open(&path, std::time::Duration::from_secs(5)).unwrap()
}

fn stored(conn: &Connection, task: &NewTask) -> bool {
    conn.query_row(
        "SELECT count(*) FROM tasks WHERE id = ?",
        [task.id.to_string()],
        |row| row.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

fn inserts(tasks: &[NewTask]) -> Vec<(Write, Reply)> {
    tasks
        .iter()
        .map(|task| {
            (
                Write::InsertTask(Box::new(task.clone())),
                oneshot::channel().0,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_write_that_rolls_back_the_whole_transaction_fails_its_group_and_nothing_of_it_is_stored()
{
    let dir = tempfile::tempdir().unwrap();
    let conn = database(&dir).await;
    // As disk full or an I/O error can: SQLite ends the whole transaction.
    conn.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON tasks WHEN NEW.prompt = 'poison'
         BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END",
    )
    .unwrap();
    let mut tasks: Vec<NewTask> = (0..12).map(|_| new_task()).collect();
    tasks[3].prompt = "poison".into();

    let results = commit(&conn, &mut inserts(&tasks));

    assert_eq!(results.len(), tasks.len());
    for (result, task) in results.iter().zip(&tasks) {
        let error = result.as_ref().expect_err("every write of the group fails");
        assert!(error.to_string().contains("poisoned"), "{error}");
        assert!(
            !stored(&conn, task),
            "{} reported failed but stored",
            task.id
        );
    }
    assert!(conn.is_autocommit(), "no transaction is left open");
    // The next group commits.
    let next = vec![new_task()];
    assert!(commit(&conn, &mut inserts(&next))[0].is_ok());
    assert!(stored(&conn, &next[0]));
}

#[tokio::test]
async fn a_write_that_fails_alone_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let conn = database(&dir).await;
    let (first, lost, last) = (new_task(), new_task(), new_task());
    // A batch whose second task repeats an id of the group: its first task must go too.
    let mut group = inserts(std::slice::from_ref(&first));
    let batch = vec![lost.clone(), first.clone()];
    group.push((Write::InsertTasks(batch), oneshot::channel().0));
    group.extend(inserts(std::slice::from_ref(&last)));

    let results = commit(&conn, &mut group);

    let outcomes: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(outcomes, [true, false, true], "{results:?}");
    assert!(stored(&conn, &first) && stored(&conn, &last));
    assert!(
        !stored(&conn, &lost),
        "the failed batch's first task was kept"
    );
}
