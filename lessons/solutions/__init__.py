"""Solutions to the lessons' exercises, one module per lesson. Try the exercise first: the checker in
``lessons/exercises/`` says what is wrong and where."""
