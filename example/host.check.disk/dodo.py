from trek_tasks.tasks import namespace

globals().update(namespace(__file__))
