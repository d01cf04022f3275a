"""The actors of rareshock: one module per population, each holding its arrays, its decisions, its
record columns and a documented interface (see each module's docstring).

| module | population | phases |
|---|---|---|
| :mod:`.producers` | separators and magnet makers | produce, ship |
| :mod:`.automaker` | assembly plants | assemble |
| :mod:`.defense` | defence programmes, national stockpile | consume |
| :mod:`.industry` | other magnet users | consume |
| :mod:`.licensing` | MOFCOM offices and the interagency review | decide, file_applications |
| :mod:`.sourcing` | every buyer's split between Chinese and other suppliers | review |
| :mod:`.market` | prices in and outside China | update |
| :mod:`.investment` | the derisking programme and its projects | month |
| :mod:`.chips` | US chip firms, Chinese buyers, BIS | step |
| :mod:`.government` | the two governments and their diplomacy | act, month |
"""
